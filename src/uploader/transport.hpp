// What the uploader needs from an HTTP(S) transport: post one body, learn what happened.
//
// The uploader's logic (batches, failure classes, backoff) is written against this
// small interface; HttpsTransport (https_transport.hpp) implements it on Boost.Beast.
#pragma once

#include <chrono>
#include <future>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace flightlog::detail {

struct PostRequest {
  std::string target;  // path and query
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;  // values may be secret
  std::string body;
  bool gzip = false;
};

struct PostOutcome {
  enum class Kind {
    Response,        // the server answered with `status`
    Offline,         // nothing was sent: DNS, connect refused / timed out, unreachable
    SentNoResponse,  // sent (or maybe sent), then reset / timeout / truncated response
    TlsFailure,      // certificate or protocol refused by the client's TLS checks
    Cancelled,       // the transport is shutting down
  };
  Kind kind = Kind::Offline;
  int status = 0;
  std::string body;  // capped
  std::optional<std::chrono::milliseconds> retry_after;
  std::string error;  // short, never contains header values
  // The request went out whole on a kept-alive connection that then failed without an
  // answer, and was sent again: whatever the outcome, the receiver may have it twice.
  bool resent_after_write = false;
};

class Transport {
 public:
  virtual ~Transport() = default;
  // Sends `request` and returns at once; the future becomes ready with the outcome.
  // Requests started one after the other are sent in that order. Called from one
  // thread (the uploader's) at a time. The uploader renders its next batch while the
  // previous one is on the wire.
  virtual std::future<PostOutcome> start(PostRequest request) = 0;
  // start() and wait.
  PostOutcome post(PostRequest request) { return start(std::move(request)).get(); }
  // Any thread: makes a post in progress return Cancelled promptly, and later ones too.
  virtual void cancel() = 0;
  // "connected", "idle", ... for the status.
  virtual std::string connection_state() const = 0;
};

}  // namespace flightlog::detail
