#include "uploader/https_transport.hpp"

#include <atomic>
#include <future>
#include <memory>
#include <mutex>

#include "flightlog/error.hpp"
#include "uploader/endpoint.hpp"
#include "uploader/https_client.hpp"

namespace flightlog::detail {

namespace {

class HttpsTransport final : public Transport {
 public:
  explicit HttpsTransport(HttpClientConfig config) : client_(std::move(config)) {}

  std::future<PostOutcome> start(PostRequest r) override {
    auto promise = std::make_shared<std::promise<PostOutcome>>();
    std::future<PostOutcome> result = promise->get_future();
    if (cancelled_.load()) {
      PostOutcome out;
      out.kind = PostOutcome::Kind::Cancelled;
      promise->set_value(std::move(out));
      return result;
    }
    HttpRequest req;
    req.target = std::move(r.target);
    req.content_type = std::move(r.content_type);
    req.headers = std::move(r.headers);
    req.body = std::move(r.body);
    req.gzip = r.gzip;
    try {
      client_.async_post(std::move(req), [this, promise](HttpOutcome o) {
        promise->set_value(translate(std::move(o)));
      });
    } catch (const Error& e) {
      // Only an invalid header gets here (the options were checked): a configuration
      // problem, not the network's.
      PostOutcome out;
      out.kind = PostOutcome::Kind::TlsFailure;
      out.error = e.what();
      set_state("misconfigured");
      promise->set_value(std::move(out));
    }
    return result;
  }

  void cancel() override {
    cancelled_.store(true);
    client_.close();
  }

  std::string connection_state() const override {
    std::lock_guard lock(mu_);
    return state_;
  }

 private:
  PostOutcome translate(HttpOutcome o) {
    PostOutcome out;
    switch (o.result) {
      case HttpResult::Response:
        out.kind = PostOutcome::Kind::Response;
        break;
      case HttpResult::Offline:
        out.kind = PostOutcome::Kind::Offline;
        break;
      case HttpResult::SentNoResponse:
        out.kind = PostOutcome::Kind::SentNoResponse;
        break;
      case HttpResult::TlsFailure:
        out.kind = PostOutcome::Kind::TlsFailure;
        break;
      case HttpResult::Cancelled:
        out.kind = PostOutcome::Kind::Cancelled;
        break;
    }
    out.status = static_cast<int>(o.status);
    out.body = std::move(o.body);
    if (o.retry_after) out.retry_after = std::chrono::milliseconds(*o.retry_after);
    out.error = std::move(o.error);
    out.resent_after_write = o.resent_after_write;
    set_state(o.result == HttpResult::Response ? "connected"
                                               : std::string(http_result_name(o.result)));
    return out;
  }

  void set_state(std::string s) {
    std::lock_guard lock(mu_);
    state_ = std::move(s);
  }

  std::atomic<bool> cancelled_{false};
  mutable std::mutex mu_;
  std::string state_ = "idle";
  // Last, so it is destroyed first: closing it completes outstanding requests, whose
  // callbacks still use the members above.
  HttpsClient client_;
};

}  // namespace

std::unique_ptr<Transport> make_https_transport(const Options& o, std::string& target) {
  HttpClientConfig c;
  c.endpoint = parse_endpoint(o.endpoint, o.allow_insecure_http);
  c.ca_file = o.ca_file.string();
  c.connect_timeout = o.connect_timeout;
  c.handshake_timeout = o.handshake_timeout;
  c.request_timeout = o.request_timeout;
  c.shutdown_timeout = o.shutdown_timeout;
  target = c.endpoint.target;
  return std::make_unique<HttpsTransport>(std::move(c));
}

}  // namespace flightlog::detail
