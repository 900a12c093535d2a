#include "mcp/http_transport.hpp"

#include "core/thread_name.hpp"

#include <curl/curl.h>
#include <fmt/format.h>
#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace agentwire::mcp {
namespace json = boost::json;

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

// What came back for one transfer: the status, the headers we use, and the body read so far. An
// SSE body is cut into events as it arrives (a long call's progress comes before its answer).
struct HttpTransport::Answer {
  HttpTransport* self = nullptr;
  long status = 0;
  std::string content_type;
  std::string session_id;
  std::string body;     // a JSON body, or an error's first bytes
  std::string pending;  // SSE: bytes not yet a full line
  std::string data;     // SSE: the current event's data lines
  bool sse = false;
  bool delivered = false;  // an SSE event reached on_line
  bool sent_with_session = false;

  void sseLine(std::string line) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) {  // the event ends
      if (!data.empty()) {
        delivered = true;
        self->deliver(std::move(data));
      }
      data.clear();
    } else if (line.rfind("data:", 0) == 0) {
      std::string_view d(line);
      d.remove_prefix(5);
      if (!d.empty() && d.front() == ' ') d.remove_prefix(1);
      if (!data.empty()) data += '\n';
      data += d;
    }  // id:, event:, retry:, comments: not needed here
  }
};

namespace {

size_t onHeader(char* ptr, size_t size, size_t n, void* user) {
  auto& a = *static_cast<HttpTransport::Answer*>(user);
  std::string line(ptr, size * n);
  if (line.rfind("HTTP/", 0) == 0) {  // a status line: a new response (after a 100 Continue, say)
    auto space = line.find(' ');
    a.status = space == std::string::npos ? 0 : std::atol(line.c_str() + space + 1);
    a.content_type.clear();
    a.sse = false;
    return size * n;
  }
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = lower(line.substr(0, colon));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) value.pop_back();
    if (name == "content-type") {
      a.content_type = lower(value);
      a.sse = a.content_type.rfind("text/event-stream", 0) == 0;
    } else if (name == "mcp-session-id") {
      // Kept now, before the body: the session sends its next request as soon as it reads the answer.
      a.session_id = value;
      a.self->adoptSession(value);
    }
  }
  return size * n;
}

size_t onBody(char* ptr, size_t size, size_t n, void* user) {
  auto& a = *static_cast<HttpTransport::Answer*>(user);
  std::string_view chunk(ptr, size * n);
  if (!a.sse || a.status < 200 || a.status >= 300) {
    // An answer as large as the stdio transport allows (16 MiB); an error's body is only for the message.
    const std::size_t cap = a.status >= 200 && a.status < 300 ? (16u << 20) : (1u << 16);
    if (a.body.size() + chunk.size() > cap) return 0;  // aborts: the call fails rather than parse half an answer
    a.body.append(chunk);
    return size * n;
  }
  a.pending.append(chunk);
  std::size_t nl;
  while ((nl = a.pending.find('\n')) != std::string::npos) {
    std::string line = a.pending.substr(0, nl);
    a.pending.erase(0, nl + 1);
    a.sseLine(std::move(line));
  }
  return size * n;
}

int onProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<std::atomic<bool>*>(user)->load() ? 1 : 0;  // stop() aborts every transfer
}

}  // namespace

HttpTransport::HttpTransport(HttpSpec spec, StdioProcess::Callbacks callbacks)
    : spec_(std::move(spec)), cb_(std::move(callbacks)) {}

HttpTransport::~HttpTransport() {
  stop();
}

void HttpTransport::spawn(std::function<void()> fn) {
  // Threads that finished are joined here, so the list holds only those in flight.
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (it->done->load()) {
      it->thread.join();
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
  auto done = std::make_shared<std::atomic<bool>>(false);
  workers_.push_back(Worker{std::thread([fn = std::move(fn), done] {
                              core::setThreadName("aw-mcp-http");
                              fn();
                              done->store(true);
                            }),
                            done});
}

bool HttpTransport::writeLine(const std::string& line) {
  // Notifications and responses are POSTed here, in the caller's order, before it goes on: the server
  // must get notifications/initialized before the requests that follow it (stateful servers refuse
  // them otherwise) and a notifications/cancelled before the next call. Only requests, which may wait
  // long for their answer, get a thread of their own.
  boost::system::error_code ec;
  auto v = json::parse(line, ec);
  if (ec) v = nullptr;  // sent as it is; post() finds no id or method in it
  bool request = v.is_object() && v.as_object().contains("id") && v.as_object().contains("method");
  if (!request) {
    if (stopping_.load() || ended_.load()) return false;
    post(line, v);
    return !ended_.load();
  }
  std::lock_guard lock(mutex_);
  // Checked under the lock: stop() swaps the workers out under it, so nothing starts after.
  if (stopping_.load() || ended_.load()) return false;
  spawn([this, line, v = std::move(v)] { post(line, v); });
  return true;
}

void HttpTransport::deliver(std::string line) {
  // The version the server chose at initialize goes with every later request.
  if (line.find("protocolVersion") != std::string::npos) {
    boost::system::error_code ec;
    auto v = json::parse(line, ec);
    const json::value* r = !ec && v.is_object() ? v.as_object().if_contains("result") : nullptr;
    const json::value* pv = r != nullptr && r->is_object() ? r->as_object().if_contains("protocolVersion") : nullptr;
    if (pv != nullptr && pv->is_string()) {
      std::lock_guard lock(mutex_);
      protocol_version_ = std::string(pv->as_string());
    }
  }
  cb_.on_line(std::move(line));
}

void HttpTransport::adoptSession(const std::string& id) {
  std::lock_guard lock(mutex_);
  if (session_id_.empty()) session_id_ = id;
}

int HttpTransport::transfer(const char* method, const std::string& body, Answer& answer) {
  answer.self = this;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return CURLE_FAILED_INIT;
  curl_slist* headers = nullptr;
  std::string session, version;
  {
    std::lock_guard lock(mutex_);
    session = session_id_;
    version = protocol_version_;
  }
  headers = curl_slist_append(headers, "Accept: application/json, text/event-stream");
  if (std::string_view(method) == "POST") headers = curl_slist_append(headers, "Content-Type: application/json");
  if (!session.empty()) headers = curl_slist_append(headers, ("Mcp-Session-Id: " + session).c_str());
  if (!version.empty()) headers = curl_slist_append(headers, ("MCP-Protocol-Version: " + version).c_str());
  for (const auto& [k, v] : spec_.headers) headers = curl_slist_append(headers, (k + ": " + v).c_str());
  curl_easy_setopt(curl, CURLOPT_URL, spec_.url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  const std::string_view m(method);
  if (m == "POST") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  } else if (m == "DELETE") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "DELETE");
  } else {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  }
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, onHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &answer);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, onBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, onProgress);
  // The DELETE that ends the session is sent while stopping: only its own short timeout ends it.
  static std::atomic<bool> never{false};
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, m == "DELETE" ? &never : &stopping_);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(spec_.connect_timeout.count()));
  if (m == "POST") {
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(spec_.max_transfer.count()));
  } else if (m == "DELETE") {
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, std::min<long>(2000, static_cast<long>(spec_.connect_timeout.count())));
  }
  CURLcode rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &answer.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  answer.sent_with_session = !session.empty();
  return rc;
}

void HttpTransport::post(const std::string& body, const json::value& sent) {
  const json::object* msg = sent.is_object() ? &sent.as_object() : nullptr;
  const json::value* id = msg != nullptr ? msg->if_contains("id") : nullptr;
  const bool is_request = id != nullptr && msg->contains("method");
  // Every answer must reach its request: a failure of the transfer itself is its answer too.
  auto answerWithError = [&](const std::string& text) {
    if (!is_request) return;
    deliver(json::serialize(
        json::object{{"jsonrpc", "2.0"}, {"id", *id}, {"error", json::object{{"code", -32603}, {"message", text}}}}));
  };
  Answer a;
  int rc = transfer("POST", body, a);
  if (stopping_.load()) return;
  if (rc != CURLE_OK && a.status == 0) {
    std::string why = fmt::format("{}: {}", spec_.url, curl_easy_strerror(static_cast<CURLcode>(rc)));
    answerWithError(why);
    // The server gone or unreachable ends the session (a new one is made with backoff); a transfer that
    // only took too long (a call the server never answers, a cancelled one) fails that call alone.
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_RESOLVE_PROXY ||
        rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING) {
      ended("cannot reach " + why);
    }
    return;
  }
  // The spec answers 404 for a session the server does not know; the TypeScript SDK answers 400 and says
  // so in the error. Any other 400 is about this request only.
  bool session_lost =
      a.status == 404 || (a.status == 400 && a.sent_with_session && lower(a.body).find("session") != std::string::npos);
  if (session_lost) {
    // The server no longer knows our session (it restarted): start again, as after an exit.
    std::string why = fmt::format("the server forgot the session (HTTP {})", a.status);
    answerWithError(why);
    return ended(why);
  }
  if (a.status < 200 || a.status >= 300) {
    return answerWithError(fmt::format("HTTP {}: {}", a.status, a.body.substr(0, 500)));
  }
  if (rc != CURLE_OK && a.sse) {
    // The stream broke after the status: whatever came is delivered; the call may be left waiting,
    // and its timeout ends it.
    if (!a.delivered)
      answerWithError(fmt::format("the answer stream broke: {}", curl_easy_strerror(static_cast<CURLcode>(rc))));
    return;
  }
  if (!a.sse && !a.body.empty()) {
    boost::system::error_code ec;
    auto v = json::parse(a.body, ec);
    if (ec) return answerWithError("the answer is not JSON: " + a.body.substr(0, 200));
    if (v.is_array()) {
      for (const auto& m : v.as_array()) deliver(json::serialize(m));
    } else {
      deliver(json::serialize(v));
    }
  }
  if (a.sse && !a.pending.empty()) {  // a last event without its blank line
    a.sseLine(std::move(a.pending));
    a.sseLine("");
  }
  if (msg == nullptr) return;
  // The negotiated version goes with every later request; the server's own stream opens once the
  // session is initialized.
  if (auto* m = msg->if_contains("method"); m != nullptr && m->is_string()) {
    if (m->as_string() == "notifications/initialized") {
      std::lock_guard lock(mutex_);
      if (!listening_ && !stopping_.load()) {
        listening_ = true;
        spawn([this] { listen(); });
      }
    }
  }
}

void HttpTransport::listen() {
  while (!stopping_.load() && !ended_.load()) {
    Answer a;
    int rc = transfer("GET", {}, a);
    if (stopping_.load() || ended_.load()) return;
    if (a.status == 405 || (a.status >= 400 && a.status != 404)) return;  // no stream offered: fine
    if (a.status == 404) return ended("the server forgot the session (HTTP 404)");
    (void)rc;  // the stream ended (server timeout or restart): open it again after a pause
    std::unique_lock lock(mutex_);
    if (cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_.load(); })) return;
  }
}

void HttpTransport::ended(const std::string& how) {
  if (ended_.exchange(true)) return;
  cb_.on_exit(how);
}

void HttpTransport::stop() {
  stopping_ = true;
  cv_.notify_all();
  std::list<Worker> workers;
  {
    std::lock_guard lock(mutex_);
    workers.swap(workers_);
  }
  for (auto& w : workers) {
    if (w.thread.joinable()) w.thread.join();
  }
  // MCP asks a client that is done with a session to DELETE it, so the server frees it now rather
  // than when it times out. A server that does not allow it (405) or is gone changes nothing here.
  {
    std::lock_guard lock(mutex_);
    if (session_id_.empty() || session_deleted_ || ended_.load()) return;
    session_deleted_ = true;  // once, also when stop() is called again
  }
  Answer a;
  transfer("DELETE", {}, a);
}

}  // namespace agentwire::mcp
