#pragma once

#include <string>

namespace agentwire::store::pg {

// libpq is opened on first use (core::SharedLibrary), not linked: libpq.cpp defines the PQ*
// functions agentwire calls and forwards them to libpq.so.5, so a server on the embedded
// defaults never loads it (nor the Kerberos, LDAP and TLS libraries it pulls in). When libpq
// cannot be loaded, PQconnectdb() returns null, PQstatus(null) says CONNECTION_BAD and
// PQerrorMessage(null) says why, as libpq itself answers for a null connection.
//
// Why libpq.so.5 could not be loaded, "" when it is (loads it if it is not yet). Thread-safe.
const std::string& libpqError();

}  // namespace agentwire::store::pg
