#include "app/systemd_notify.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace agentwire::app {
namespace {

// A datagram socket bound as systemd binds NOTIFY_SOCKET; `abstract` binds "\0name".
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& name, bool abstract) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, name.data(), name.size());
    if (abstract)
      addr.sun_path[0] = '\0';
    else
      ::unlink(name.c_str());
    path_ = abstract ? "" : name;
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr),
                   static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size())),
              0)
        << std::strerror(errno);
    timeval t{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &t, sizeof t);
  }
  ~NotifySocket() {
    ::close(fd_);
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  std::string receive() {
    char buf[256];
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string("<nothing>");
  }

 private:
  int fd_ = -1;
  std::string path_;
};

class SystemdNotifyTest : public ::testing::Test {
 protected:
  void TearDown() override {
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
  }
};

TEST_F(SystemdNotifyTest, SendsTheStateToThePathInNotifySocket) {
  std::string path = ::testing::TempDir() + "aw-notify-" + std::to_string(getpid());
  NotifySocket manager(path, false);
  setenv("NOTIFY_SOCKET", path.c_str(), 1);
  EXPECT_TRUE(notifyServiceManager("READY=1"));
  EXPECT_EQ(manager.receive(), "READY=1");
  EXPECT_TRUE(notifyServiceManager("STOPPING=1"));
  EXPECT_EQ(manager.receive(), "STOPPING=1");
}

TEST_F(SystemdNotifyTest, AnAtSignNamesTheAbstractNamespace) {
  std::string name = "@aw-notify-abstract-" + std::to_string(getpid());
  NotifySocket manager(name, true);
  setenv("NOTIFY_SOCKET", name.c_str(), 1);
  EXPECT_TRUE(notifyServiceManager("WATCHDOG=1"));
  EXPECT_EQ(manager.receive(), "WATCHDOG=1");
}

TEST_F(SystemdNotifyTest, WithoutAServiceManagerNothingIsSent) {
  unsetenv("NOTIFY_SOCKET");
  EXPECT_FALSE(notifyServiceManager("READY=1"));
  setenv("NOTIFY_SOCKET", "relative/path", 1);  // neither a path nor an abstract name
  EXPECT_FALSE(notifyServiceManager("READY=1"));
  setenv("NOTIFY_SOCKET", "/nonexistent/agentwire/notify", 1);
  EXPECT_FALSE(notifyServiceManager("READY=1"));
}

TEST_F(SystemdNotifyTest, TheWatchdogIntervalIsThisProcesssOnly) {
  EXPECT_FALSE(serviceWatchdogInterval().has_value());
  setenv("WATCHDOG_USEC", "3000000", 1);
  ASSERT_TRUE(serviceWatchdogInterval().has_value());
  EXPECT_EQ(serviceWatchdogInterval()->count(), 3000000);
  setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
  EXPECT_TRUE(serviceWatchdogInterval().has_value());
  setenv("WATCHDOG_PID", std::to_string(getpid() + 1).c_str(), 1);  // meant for another process
  EXPECT_FALSE(serviceWatchdogInterval().has_value());
  unsetenv("WATCHDOG_PID");
  setenv("WATCHDOG_USEC", "0", 1);
  EXPECT_FALSE(serviceWatchdogInterval().has_value());
  setenv("WATCHDOG_USEC", "soon", 1);
  EXPECT_FALSE(serviceWatchdogInterval().has_value());
}

}  // namespace
}  // namespace agentwire::app
