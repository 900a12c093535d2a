#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace agentwire::app {

// The two calls of systemd's notify protocol agentwire makes, without libsystemd: a datagram to
// the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace), which
// systemd documents as a stable interface that services may speak themselves (sd_notify(3)).
// libsystemd brought six compression and crypto libraries into every start for these (2-4 ms of
// it, docs/performance.md).

// Sends `state` ("READY=1", "STOPPING=1", "WATCHDOG=1"). True if sent; false if the server is not
// run by a service manager that asked for it (no $NOTIFY_SOCKET) or the socket refused it.
bool notifyServiceManager(const std::string& state);

// The watchdog interval systemd asked this process for ($WATCHDOG_USEC, if $WATCHDOG_PID is unset
// or this process), as sd_watchdog_enabled() reads it; nothing if none.
std::optional<std::chrono::microseconds> serviceWatchdogInterval();

}  // namespace agentwire::app
