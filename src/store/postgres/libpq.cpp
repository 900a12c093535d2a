#include "store/postgres/libpq.hpp"

#include "core/shared_library.hpp"

#include <libpq-fe.h>

namespace agentwire::store::pg {
namespace {

struct Libpq {
  decltype(&::PQconnectdb) connectdb = nullptr;
  decltype(&::PQfinish) finish = nullptr;
  decltype(&::PQstatus) status = nullptr;
  decltype(&::PQerrorMessage) errorMessage = nullptr;
  decltype(&::PQexec) exec = nullptr;
  decltype(&::PQexecParams) execParams = nullptr;
  decltype(&::PQresultStatus) resultStatus = nullptr;
  decltype(&::PQresultErrorMessage) resultErrorMessage = nullptr;
  decltype(&::PQresultErrorField) resultErrorField = nullptr;
  decltype(&::PQntuples) ntuples = nullptr;
  decltype(&::PQgetvalue) getvalue = nullptr;
  decltype(&::PQgetlength) getlength = nullptr;
  decltype(&::PQgetisnull) getisnull = nullptr;
  decltype(&::PQclear) clear = nullptr;
  std::string error;
};

Libpq load() {
  Libpq p;
  core::SharedLibrary so("libpq.so.5");
  so.resolve("PQconnectdb", p.connectdb);
  so.resolve("PQfinish", p.finish);
  so.resolve("PQstatus", p.status);
  so.resolve("PQerrorMessage", p.errorMessage);
  so.resolve("PQexec", p.exec);
  so.resolve("PQexecParams", p.execParams);
  so.resolve("PQresultStatus", p.resultStatus);
  so.resolve("PQresultErrorMessage", p.resultErrorMessage);
  so.resolve("PQresultErrorField", p.resultErrorField);
  so.resolve("PQntuples", p.ntuples);
  so.resolve("PQgetvalue", p.getvalue);
  so.resolve("PQgetlength", p.getlength);
  so.resolve("PQgetisnull", p.getisnull);
  so.resolve("PQclear", p.clear);
  if (!so.ok()) p.error = "libpq.so.5 cannot be loaded: " + so.error();
  return p;
}

const Libpq& libpq() {
  static const Libpq p = load();
  return p;
}

// For the calls that take a connection or a result only libpq can have made.
const Libpq& loaded() {
  const Libpq& p = libpq();
  if (!p.error.empty()) core::abortWithoutLibrary("libpq", p.error);
  return p;
}

}  // namespace

const std::string& libpqError() {
  return libpq().error;
}

}  // namespace agentwire::store::pg

using agentwire::store::pg::libpq;
using agentwire::store::pg::loaded;

extern "C" {

PGconn* PQconnectdb(const char* conninfo) {
  const auto& p = libpq();
  return p.error.empty() ? p.connectdb(conninfo) : nullptr;
}

void PQfinish(PGconn* conn) {
  if (conn != nullptr) loaded().finish(conn);
}

ConnStatusType PQstatus(const PGconn* conn) {
  return conn == nullptr ? CONNECTION_BAD : loaded().status(conn);
}

char* PQerrorMessage(const PGconn* conn) {
  const auto& p = libpq();
  return p.error.empty() ? p.errorMessage(conn) : const_cast<char*>(p.error.c_str());
}

PGresult* PQexec(PGconn* conn, const char* query) {
  return loaded().exec(conn, query);
}

PGresult* PQexecParams(PGconn* conn, const char* command, int nParams, const Oid* paramTypes,
                       const char* const* paramValues, const int* paramLengths, const int* paramFormats,
                       int resultFormat) {
  return loaded().execParams(conn, command, nParams, paramTypes, paramValues, paramLengths, paramFormats, resultFormat);
}

ExecStatusType PQresultStatus(const PGresult* res) {
  return res == nullptr ? PGRES_FATAL_ERROR : loaded().resultStatus(res);
}

char* PQresultErrorMessage(const PGresult* res) {
  return loaded().resultErrorMessage(res);
}

char* PQresultErrorField(const PGresult* res, int fieldcode) {
  return loaded().resultErrorField(res, fieldcode);
}

int PQntuples(const PGresult* res) {
  return loaded().ntuples(res);
}

char* PQgetvalue(const PGresult* res, int tup_num, int field_num) {
  return loaded().getvalue(res, tup_num, field_num);
}

int PQgetlength(const PGresult* res, int tup_num, int field_num) {
  return loaded().getlength(res, tup_num, field_num);
}

int PQgetisnull(const PGresult* res, int tup_num, int field_num) {
  return loaded().getisnull(res, tup_num, field_num);
}

void PQclear(PGresult* res) {
  if (res != nullptr) loaded().clear(res);
}

}  // extern "C"
