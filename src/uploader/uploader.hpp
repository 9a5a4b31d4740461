// The uploader: drains the journal to the endpoint in sync order, with batches, failure
// classes and backoff, on a thread of its own.
//
// A pass reads the journal in sync order (CRITICAL, HIGH, NORMAL, LOW; oldest first
// within each) in short read transactions, renders a batch (bounded by records and
// bytes), posts it, and acts on the outcome's failure class (design brief):
//   success        the records are deleted (one write transaction on the writer thread,
//                  which also updates the counters); the pass goes on
//   rejected       (other 4xx, ClickHouse parse errors) the batch is split in halves
//                  until the records at fault are alone; those move to failed with the
//                  status and reason, the rest is delivered
//   retryable      (5xx, 408, 429, reset/timeout after sending, truncated response)
//                  one attempt is counted on every record of the batch; a record at
//                  max_attempts moves to failed; back off (Retry-After honoured)
//   offline        (nothing sent) back off; no attempt counted
//   misconfigured  (TLS verification, redirects, 401/403/404 and the other 4xx that
//                  refuse the request's envelope) back off at the cap; no attempt
//                  counted; the status shows the error
// Journal writes go through the writer thread (Writer::call), so one thread owns every
// write transaction and map growth.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "flightlog/client.hpp"
#include "journal/journal.hpp"
#include "uploader/backoff.hpp"
#include "uploader/transport.hpp"

namespace flightlog::detail {

class Writer;

enum class FailureClass { None, Rejected, Retryable, Offline, Misconfigured, Cancelled };

// Pure: the failure class of an outcome. `clickhouse`: a 500 whose body says the input
// could not be parsed is the data's fault (rejected), not the server's.
FailureClass classify(const PostOutcome& outcome, bool clickhouse) noexcept;

struct UploaderConfig {
  UploadFormat format = UploadFormat::Ndjson;
  std::string target;   // path and query of the endpoint
  std::string api_key;  // sent in a header only
  std::string clickhouse_table;
  std::string clickhouse_user;
  bool gzip = false;
  bool auto_sync = true;
  std::chrono::milliseconds interval{60000};
  std::size_t batch_max_records = 5000;
  std::size_t batch_max_bytes = std::size_t{4} << 20;
  std::uint16_t max_attempts = 3;
  std::chrono::milliseconds backoff_base{1000};
  std::chrono::milliseconds backoff_cap{300000};
};

// Where and as whom a delivery posts: what every request of it carries.
struct Addressee {
  UploadFormat format;
  const std::string& target;  // path and query of the endpoint
  const std::string& api_key;
  const std::string& clickhouse_table;
  const std::string& clickhouse_user;
};

// Fills in the target, content type, credentials and Idempotency-Key of a POST of
// `count` records, seq `first_seq` to `last_seq`, of journal `journal_id`, in the
// format of `to` (the body and gzip are the caller's). The uploader and
// flightlog-replay both address their requests with it, so they speak one protocol.
void address_post(PostRequest& req, const Addressee& to, std::string_view journal_id,
                  std::uint64_t first_seq, std::uint64_t last_seq, std::size_t count);

// A short, single-line reason for a failed post (status and failed records): "HTTP nnn:
// <start of the body>" or the transport's error, at most 210 characters, control
// characters blanked. `secret` (the api_key) is masked wherever it appears, before the
// cut, in case a server echoes it back.
std::string short_reason(const PostOutcome& o, const std::string& secret);

struct UploaderStatus {
  std::optional<std::chrono::system_clock::time_point> last_sync_time;
  // Accepted by the receiver and deleted by the uploader (counted once the delete
  // commits; a record evicted or cleaned up meanwhile is counted there instead).
  std::uint64_t synced_total = 0;
  std::uint64_t failed_total = 0;  // moved to failed since start
  // Records in a request whose fate was unknown (reset or timeout after sending), or
  // that the transport resent after the server may have read it whole.
  std::uint64_t duplicates_possible = 0;
  std::chrono::milliseconds current_backoff{0};
  int consecutive_failures = 0;
  std::string last_error;
  std::string connection_state;
};

class Uploader {
 public:
  Uploader(const UploaderConfig& config, Journal& journal, Writer& writer,
           std::unique_ptr<Transport> transport);
  ~Uploader();  // cancels a post in flight and joins; bounded by the transport's timeouts
  Uploader(const Uploader&) = delete;
  Uploader& operator=(const Uploader&) = delete;

  // One pass now, ignoring any backoff; returns what it synced and failed.
  SyncResult sync_now();
  UploaderStatus status() const;

 private:
  // Rendered records, back to back in one body; record i is body[start(i), ends[i]).
  struct Batch {
    std::vector<RecordRef> refs;
    std::string body;
    std::vector<std::size_t> ends;
    std::size_t start(std::size_t i) const { return i == 0 ? 0 : ends[i - 1]; }
  };
  enum class Step { Continue, Stop };
  // Per record set (CRITICAL..LOW): the sequence a pass reads on from, or
  // kUnreadable once reading the set failed in this pass.
  using Cursors = std::array<std::uint64_t, 4>;
  static constexpr std::uint64_t kUnreadable = ~std::uint64_t{0};

  void run();
  SyncResult pass();
  bool stopping() const;
  // Reads and renders the next batch from `cursors` on; damaged records it meets are
  // moved to failed and counted in `result`.
  Batch next_batch(Cursors& cursors, SyncResult& result);
  PostRequest request_for(const Batch& batch, std::size_t begin, std::size_t end) const;
  // Posts records [begin, end) of `batch` and acts on the outcome.
  Step send_range(Batch& batch, std::size_t begin, std::size_t end, SyncResult& result);
  // Acts on the outcome of posting records [begin, end): deletes, splits, counts
  // attempts, backs off.
  Step handle(Batch& batch, std::size_t begin, std::size_t end, const PostOutcome& out,
              SyncResult& result);
  // Waits until every delete this pass submitted is committed, and counts what they
  // removed in `result`.
  void settle_deletes(SyncResult& result);
  void back_off(std::chrono::milliseconds delay, const std::string& error);

  const UploaderConfig config_;
  Journal& journal_;
  Writer& writer_;
  std::unique_ptr<Transport> transport_;
  Backoff backoff_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::vector<std::promise<SyncResult>> manual_;  // sync_now() callers waiting
  std::chrono::steady_clock::time_point backoff_until_{};
  UploaderStatus status_;
  bool last_pass_unreadable_ = false;  // the last pass met a read error (read_error_)
  std::string spare_body_;             // the last batch's body buffer, reused (no fresh pages)
  std::vector<std::future<std::size_t>> pending_deletes_;  // uploader thread only
  // Why reading the journal failed in this pass ("" if it did not); uploader thread only.
  // The other sets still ship; the pass ends with it as the status's last_error.
  std::string read_error_;
  std::thread thread_;
};

}  // namespace flightlog::detail
