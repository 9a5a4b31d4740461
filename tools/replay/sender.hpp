// flightlog-replay's delivery: batches of chosen records POSTed with the uploader's
// transport, body rendering, failure classes and backoff.
//
// Bodies are rendered exactly as the uploader renders them (format/json.hpp: NDJSON
// objects without delivery state, or ClickHouse JSONEachRow rows), with the records'
// original ids <journal id>-<seq>, so a receiver that drops duplicates by id drops a
// replayed record it already has. Requests carry the uploader's headers (Authorization:
// Bearer, or X-ClickHouse-User/-Key and the INSERT query; an Idempotency-Key per batch).
//
// Outcomes, by classify() (uploader/uploader.hpp):
//   accepted       (2xx) counted as accepted
//   rejected       the batch is split in halves until the records at fault are alone;
//                  each is reported with the status and a short reason; the rest is sent
//   retryable      retried after a full-jitter backoff (Retry-After honoured, within the
//                  cap) until --max-attempts posts of that batch; then given up
//   offline        as retryable, but a batch given up this way ends the replay: the
//                  receiver is unreachable. (The uploader counts no attempt for offline
//                  and waits forever; a command-line tool has to end.)
//   misconfigured  (TLS verification, 401/403/404, redirects) ends the replay at once
// Nothing is written anywhere: the source journal is not modified.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "flightlog/options.hpp"
#include "format/record.hpp"
#include "uploader/backoff.hpp"
#include "uploader/transport.hpp"

namespace flightlog::tools {

struct SendConfig {
  UploadFormat format = UploadFormat::Ndjson;
  std::string target;   // path and query of the endpoint
  std::string api_key;  // sent in a header only, masked in reasons
  std::string clickhouse_table;
  std::string clickhouse_user;
  bool gzip = false;
  std::size_t batch_max_records = 5000;
  std::size_t batch_max_bytes = std::size_t{4} << 20;
  std::uint16_t max_attempts = 3;
  std::chrono::milliseconds backoff_base{1000};
  std::chrono::milliseconds backoff_cap{30000};
  bool dry_run = false;  // render and count batches, post nothing
};

struct NotAccepted {
  std::string id;
  std::string reason;  // "rejected: HTTP 400: ..." or "gave up after 3 attempts: ..."
};

struct SendSummary {
  std::size_t queued_for_sending = 0;  // records handed to add()
  std::size_t accepted = 0;
  std::size_t rejected = 0;
  std::size_t gave_up = 0;
  std::size_t batches = 0;   // batches formed (dry run: would be sent)
  std::size_t requests = 0;  // POSTs made, retries and halves included
  std::size_t retries = 0;   // POSTs repeated after a retryable or offline failure
  std::vector<NotAccepted> not_accepted;
  bool misconfigured = false;
  bool unreachable = false;
  bool interrupted = false;
  std::string stop_reason;  // why sending stopped early, if it did

  std::size_t not_sent() const { return queued_for_sending - accepted - rejected - gave_up; }
};

class Sender {
 public:
  Sender(const SendConfig& config, std::string journal_id, detail::Transport* transport);

  // Renders one record into the pending batches (call inside a scan: it copies).
  void add(std::uint64_t seq, const detail::DecodedRecord& rec);
  // Posts the pending batches that are full (`final`: all of them). Call between read
  // transactions. Returns false once sending has stopped for good.
  bool send_pending(bool final);
  bool stopped() const { return stopped_; }
  const SendSummary& summary() const { return summary_; }

 private:
  enum class Step { Continue, Stop };
  detail::PostRequest request_for(std::size_t begin, std::size_t end) const;
  Step send_range(std::size_t begin, std::size_t end);
  std::string reason_of(const detail::PostOutcome& o) const;
  std::size_t start(std::size_t i) const { return i == 0 ? 0 : ends_[i - 1]; }
  void compact();

  const SendConfig config_;
  const std::string journal_id_;
  detail::Transport* transport_;
  detail::Backoff backoff_;
  // Rendered records waiting: record i is body_[start(i), ends_[i]); [0, next_) are done.
  std::string body_;
  std::vector<std::size_t> ends_;
  std::vector<std::uint64_t> seqs_;
  std::size_t next_ = 0;
  bool stopped_ = false;
  SendSummary summary_;
};

}  // namespace flightlog::tools
