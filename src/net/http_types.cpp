#include "net/http_types.hpp"

#include <boost/json.hpp>

namespace agentwire::net {

HttpReply jsonError(int status, const std::string& code, const std::string& message) {
  boost::json::object err{{"code", code}, {"message", message}};
  return HttpReply{status, "application/json", boost::json::serialize(boost::json::object{{"error", err}}), {}, {}};
}

}  // namespace agentwire::net
