#include "net/http_types.hpp"

#include <boost/json.hpp>

namespace agentwire::net {

HttpReply jsonReply(int status, const boost::json::value& body) {
  return HttpReply{status, "application/json", boost::json::serialize(body), {}, {}, {}};
}

HttpReply jsonError(int status, const std::string& code, const std::string& message) {
  return jsonReply(status, boost::json::object{{"error", {{"code", code}, {"message", message}}}});
}

}  // namespace agentwire::net
