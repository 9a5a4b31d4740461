#include "uploader/uploader.hpp"

#include <charconv>
#include <string_view>

#include <algorithm>
#include <cctype>
#include <iterator>
#include <random>

#include "core/crash_point.hpp"
#include "core/threads.hpp"
#include "format/json.hpp"
#include "format/record.hpp"
#include "writer/writer.hpp"

namespace flightlog::detail {

namespace {

constexpr auto kBacklogPoll = std::chrono::milliseconds(50);
constexpr auto kMaxRetryAfter = std::chrono::hours(1);

std::string url_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

// ClickHouse answers most errors with 500, whether the server or a row is at fault. A row
// is at fault when the message names where in the input it failed ("(at row N)",
// "(while read the value of key K)", as 18.16 through current versions write them) or
// carries one of the codes ClickHouse raises only for bad input values. Everything else
// (memory limits, a replica down, too many parts) stays retryable.
bool clickhouse_data_error(std::string_view body) noexcept {
  for (std::string_view context : {"(at row ", "(while read the value of key ",
                                   "(while reading the value of key ", "Cannot parse"}) {
    if (body.find(context) != std::string_view::npos) return true;
  }
  const std::size_t at = body.find("Code: ");
  if (at == std::string_view::npos) return false;
  int code = 0;
  const char* first = body.data() + at + 6;
  const char* end = body.data() + body.size();
  const auto [after, ec] = std::from_chars(first, end, code);
  // Digits that run to the end of the body may be a longer code cut short (a body that
  // runs to the connection's close, cut without close_notify): "Code: 60" (a missing
  // table) read as 6 would be taken for bad data. ClickHouse always writes more after it.
  if (ec != std::errc{} || after == end) return false;
  // CANNOT_PARSE_TEXT 6, CANNOT_PARSE_QUOTED_STRING 26, CANNOT_PARSE_INPUT_ASSERTION_FAILED
  // 27, CANNOT_PARSE_DATE 38, CANNOT_PARSE_DATETIME 41, TYPE_MISMATCH 53,
  // ARGUMENT_OUT_OF_BOUND 69, CANNOT_CONVERT_TYPE 70, CANNOT_PARSE_NUMBER 72,
  // INCORRECT_DATA 117, TOO_LARGE_STRING_SIZE 131, CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN 349.
  for (int data_code : {6, 26, 27, 38, 41, 53, 69, 70, 72, 117, 131, 349}) {
    if (code == data_code) return true;
  }
  return false;
}

}  // namespace

std::string short_reason(const PostOutcome& o, const std::string& secret) {
  // The whole text is masked before it is cut short, so a key the server echoes across
  // the cut cannot leave its first characters behind; the search goes on after each
  // mask, so a key that contains "***" cannot make it loop.
  std::string text =
      o.kind != PostOutcome::Kind::Response
          ? o.error
          : "HTTP " + std::to_string(o.status) + (o.body.empty() ? "" : ": " + o.body);
  if (!secret.empty()) {
    for (auto at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 3)) {
      text.replace(at, secret.size(), "***");
    }
  }
  constexpr std::size_t kMaxReason = 210;  // "HTTP nnn: " and 200 characters of body
  if (text.size() > kMaxReason) text.resize(kMaxReason);
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return text;
}

FailureClass classify(const PostOutcome& o, bool clickhouse) noexcept {
  switch (o.kind) {
    case PostOutcome::Kind::Offline:
      return FailureClass::Offline;
    case PostOutcome::Kind::SentNoResponse:
      return FailureClass::Retryable;
    case PostOutcome::Kind::TlsFailure:
      return FailureClass::Misconfigured;
    case PostOutcome::Kind::Cancelled:
      return FailureClass::Cancelled;
    case PostOutcome::Kind::Response:
      break;
  }
  const int s = o.status;
  if (s >= 200 && s < 300) return FailureClass::None;
  // A final status outside 200-599 (101 Switching Protocols, or no HTTP class at all):
  // whatever answers there does not take uploads. Retrying would only use up attempts.
  if (s < 200 || s >= 600) return FailureClass::Misconfigured;
  if (s == 408 || s == 429) return FailureClass::Retryable;
  if (s >= 300 && s < 400) return FailureClass::Misconfigured;
  // 4xx that refuse the request's envelope, the same for every batch, not its records:
  // credentials (401, 403, 407), the URL (404, 410, 421), the method (405), the content
  // or coding (415), the protocol (426), the headers (431). Splitting the batch to find
  // records at fault would move every queued record to failed.
  constexpr int kEnvelopeRefused[] = {401, 403, 404, 405, 407, 410, 415, 421, 426, 431};
  if (std::find(std::begin(kEnvelopeRefused), std::end(kEnvelopeRefused), s) !=
      std::end(kEnvelopeRefused)) {
    return FailureClass::Misconfigured;
  }
  if (s >= 400 && s < 500) return FailureClass::Rejected;
  if (clickhouse && s == 500 && clickhouse_data_error(o.body)) {
    return FailureClass::Rejected;  // ClickHouse reports bad rows with 500
  }
  return FailureClass::Retryable;
}

Uploader::Uploader(const UploaderConfig& config, Journal& journal, Writer& writer,
                   std::unique_ptr<Transport> transport)
    : config_(config),
      journal_(journal),
      writer_(writer),
      transport_(std::move(transport)),
      backoff_(config.backoff_base, config.backoff_cap, std::random_device{}()) {
  thread_ = std::thread([this] { run(); });
  name_thread(thread_, "fl-upload");
  yield_on_wakeup(thread_);
}

Uploader::~Uploader() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  transport_->cancel();
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (auto& p : manual_) p.set_value(SyncResult{});
}

SyncResult Uploader::sync_now() {
  std::future<SyncResult> f;
  {
    std::lock_guard lock(mu_);
    if (stop_) return {};
    manual_.emplace_back();
    f = manual_.back().get_future();
  }
  wake_.notify_all();
  return f.get();
}

UploaderStatus Uploader::status() const {
  std::lock_guard lock(mu_);
  UploaderStatus s = status_;
  const auto now = std::chrono::steady_clock::now();
  s.current_backoff =
      backoff_until_ > now
          ? std::chrono::duration_cast<std::chrono::milliseconds>(backoff_until_ - now)
          : std::chrono::milliseconds(0);
  s.connection_state = transport_->connection_state();
  return s;
}

void Uploader::run() {
  auto next_auto = std::chrono::steady_clock::now() + config_.interval;
  std::unique_lock lock(mu_);
  while (!stop_) {
    const auto now = std::chrono::steady_clock::now();
    bool due = false;
    if (config_.auto_sync && now >= backoff_until_) {
      std::uint64_t queued = 0;
      const auto counts = journal_.counts();
      for (std::size_t p = 0; p < 4; ++p) queued += counts.entries[p];
      // On the interval, and as soon as a full batch waits, but only while uploads
      // succeed. After a failure the next pass waits for the later of the backoff and the
      // next interval tick: a backlog of full batches would otherwise bring the retries
      // forward to the backoff's pace (well under a second at first), and a brief outage
      // would use up every record's attempts. Nor after a pass that could not read part
      // of the journal: the unreadable records would trigger it again and again; the
      // interval still retries.
      const bool failing = backoff_.failures() > 0;  // since the last success
      due = (now >= next_auto && queued > 0) ||
            (queued >= config_.batch_max_records && !failing && !last_pass_unreadable_);
      if (now >= next_auto) next_auto = now + config_.interval;
    }
    if (manual_.empty() && !due) {
      wake_.wait_for(lock, kBacklogPoll);
      continue;
    }
    auto waiting = std::move(manual_);
    manual_.clear();
    lock.unlock();
    const SyncResult r = pass();
    for (auto& p : waiting) p.set_value(r);
    lock.lock();
    if (config_.auto_sync) next_auto = std::chrono::steady_clock::now() + config_.interval;
  }
}

// A pass overlaps its three stages, one batch apart: while batch k is on the wire, the
// uploader renders batch k+1, and the writer's commit thread deletes batch k-1. Reading
// on from per-priority cursors (not from the start) keeps a batch whose delete is still
// pending out of the next one. Each batch is built afresh from every priority, in sync
// order.
//
// A pass ends once it has sent as many records as were queued when it started (or
// sooner, when the journal runs dry or a failure stops it): while logging kept up with
// the upload, a pass that read on to whatever arrived meanwhile would never end, and
// sync_offline_queue() would never return. Within that budget it keeps reading every
// priority afresh, so a CRITICAL record logged during a long pass (a backlog after an
// outage) still goes out in the next batch, not after the backlog.
//
// A crash between a server's acceptance and the delete's commit re-sends those records
// after a restart (at least once; receivers de-duplicate by id). The pass ends only once
// every delete it started is committed, so the next pass, which starts from the front
// of the journal, never re-sends what this one delivered.
SyncResult Uploader::pass() {
  SyncResult result;
  Cursors cursors{};
  read_error_.clear();
  const JournalCounts counts = journal_.counts();
  std::uint64_t budget = 0;  // records this pass may still send: those queued at its start
  for (std::size_t p = 0; p < 4; ++p) budget += counts.entries[p];
  Batch batch = next_batch(cursors, result);
  while (!batch.refs.empty() && !stopping()) {
    std::future<PostOutcome> in_flight =
        transport_->start(request_for(batch, 0, batch.refs.size()));
    budget -= std::min<std::uint64_t>(budget, batch.refs.size());
    Batch next = budget > 0 ? next_batch(cursors, result) : Batch{};
    const PostOutcome out = in_flight.get();
    const Step step = handle(batch, 0, batch.refs.size(), out, result);
    spare_body_ = std::move(batch.body);
    if (step == Step::Stop) {
      if (!next.refs.empty()) spare_body_ = std::move(next.body);  // not sent: read again
      break;
    }
    batch = std::move(next);
  }
  settle_deletes(result);
  std::lock_guard lock(mu_);
  last_pass_unreadable_ = !read_error_.empty();
  if (last_pass_unreadable_) status_.last_error = read_error_;
  return result;
}

bool Uploader::stopping() const {
  std::lock_guard lock(mu_);
  return stop_;
}

void Uploader::settle_deletes(SyncResult& result) {
  for (auto& f : pending_deletes_) result.synced += f.get();
  pending_deletes_.clear();
}

Uploader::Batch Uploader::next_batch(Cursors& cursors, SyncResult& result) {
  Batch b;
  b.body = std::move(spare_body_);
  b.body.clear();
  std::vector<RecordRef> damaged;
  DecodedRecord rec;
  const bool ch = config_.format == UploadFormat::ClickHouse;
  for (std::size_t s = 0; s < 4 && b.refs.size() < config_.batch_max_records; ++s) {
    const auto set = static_cast<RecordSet>(s);
    bool full = false;
    while (!full && cursors[s] != kUnreadable) {
      const std::size_t want = config_.batch_max_records - b.refs.size();
      std::uint64_t more = 0;
      try {
        more = journal_.scan(
            set, cursors[s], want, [&](std::uint64_t seq, std::span<const std::byte> bytes) {
              if (full) return;
              if (!decode_record(bytes, rec).empty()) {
                damaged.push_back({set, seq});
                cursors[s] = seq + 1;
                return;
              }
              const std::size_t before = b.body.size();
              if (ch) {
                append_clickhouse_row(b.body, journal_.journal_id(), seq, rec);
              } else {
                append_record_json(b.body, journal_.journal_id(), seq, rec, RecordState::Queued,
                                   JsonRecordOptions{.include_delivery_state = false});
              }
              b.body.push_back('\n');
              if (!b.refs.empty() && b.body.size() > config_.batch_max_bytes) {
                b.body.resize(before);  // this record starts the next batch
                full = true;
                return;
              }
              b.ends.push_back(b.body.size());
              b.refs.push_back({set, seq});
              cursors[s] = seq + 1;
              if (b.refs.size() >= config_.batch_max_records) full = true;
            });
      } catch (const std::exception& e) {
        // A damaged page (or no reader slot): what was read so far still ships, and so do
        // the other sets; this set is skipped until the next pass tries again.
        read_error_ = e.what();
        cursors[s] = kUnreadable;
        break;
      }
      if (more == 0) break;
    }
    if (full) break;
  }
  if (!damaged.empty()) {
    // Never ship garbage, never loop on it: park damaged records in the failed set.
    const std::size_t n = writer_.call(
        [&] { return journal_.move_to_failed(damaged, 0, "damaged record (checksum or format)"); });
    result.failed += n;
    std::lock_guard lock(mu_);
    status_.failed_total += n;
  }
  return b;
}

PostRequest Uploader::request_for(const Batch& batch, std::size_t begin, std::size_t end) const {
  PostRequest req;
  req.gzip = config_.gzip;
  req.body.assign(batch.body, batch.start(begin), batch.start(end) - batch.start(begin));
  address_post(req,
               {config_.format, config_.target, config_.api_key, config_.clickhouse_table,
                config_.clickhouse_user},
               journal_.journal_id(), batch.refs[begin].seq, batch.refs[end - 1].seq, end - begin);
  return req;
}

void address_post(PostRequest& req, const Addressee& to, std::string_view journal_id,
                  std::uint64_t first_seq, std::uint64_t last_seq, std::size_t count) {
  // The same records always carry the same key, so a receiver can drop a re-sent batch.
  req.headers.emplace_back("Idempotency-Key",
                           std::string(journal_id) + "-" + std::to_string(first_seq) + "-" +
                               std::to_string(last_seq) + "-" + std::to_string(count));
  req.content_type = "application/x-ndjson";
  if (to.format == UploadFormat::ClickHouse) {
    const char sep = to.target.find('?') == std::string::npos ? '?' : '&';
    req.target = to.target + sep + "query=" +
                 url_encode("INSERT INTO " + to.clickhouse_table + " FORMAT JSONEachRow");
    req.headers.emplace_back("X-ClickHouse-User", to.clickhouse_user);
    if (!to.api_key.empty()) req.headers.emplace_back("X-ClickHouse-Key", to.api_key);
  } else {
    req.target = to.target;
    if (!to.api_key.empty()) req.headers.emplace_back("Authorization", "Bearer " + to.api_key);
  }
}

Uploader::Step Uploader::send_range(Batch& batch, std::size_t begin, std::size_t end,
                                    SyncResult& result) {
  return handle(batch, begin, end, transport_->post(request_for(batch, begin, end)), result);
}

Uploader::Step Uploader::handle(Batch& batch, std::size_t begin, std::size_t end,
                                const PostOutcome& out, SyncResult& result) {
  const FailureClass cls = classify(out, config_.format == UploadFormat::ClickHouse);
  std::span<const RecordRef> refs(batch.refs.data() + begin, end - begin);
  // The receiver may hold these records twice: a request whose fate is unknown, or one
  // the transport sent again after the server may have read it whole, whatever the
  // answer to the second copy was.
  if (out.kind == PostOutcome::Kind::SentNoResponse || out.resent_after_write) {
    std::lock_guard lock(mu_);
    status_.duplicates_possible += refs.size();
  }
  switch (cls) {
    case FailureClass::None: {
      // Deleted on the commit thread while the pass goes on (see pass()).
      crash_point(CrashPoint::BeforeDelete);
      // synced_total (and the pass's synced, in settle_deletes()) grow by what the delete
      // removed, once it has committed: a status never shows a record both queued and
      // synced, and a record evicted or cleaned up while it was in flight is counted
      // there, not twice.
      pending_deletes_.push_back(
          writer_.submit([this, delivered = std::vector<RecordRef>(refs.begin(), refs.end())] {
            const std::size_t removed = journal_.remove_delivered(delivered);
            std::lock_guard lock(mu_);
            status_.synced_total += removed;
            return removed;
          }));
      backoff_.reset();
      std::lock_guard lock(mu_);
      status_.last_sync_time = std::chrono::system_clock::now();
      status_.consecutive_failures = 0;
      status_.last_error.clear();
      backoff_until_ = {};
      return Step::Continue;
    }
    case FailureClass::Rejected: {
      if (refs.size() == 1) {
        const auto status = static_cast<std::uint16_t>(out.status);
        const std::string reason = short_reason(out, config_.api_key);
        const std::size_t moved =
            writer_.call([&] { return journal_.move_to_failed(refs, status, reason); });
        result.failed += moved;
        std::lock_guard lock(mu_);
        status_.failed_total += moved;
        return Step::Continue;
      }
      // Split to find the records at fault; deliver the rest.
      const std::size_t mid = begin + (end - begin) / 2;
      if (send_range(batch, begin, mid, result) == Step::Stop) return Step::Stop;
      return send_range(batch, mid, end, result);
    }
    case FailureClass::Retryable: {
      const auto status = static_cast<std::uint16_t>(out.status);
      const std::string reason = short_reason(out, config_.api_key);
      const std::size_t moved = writer_.call(
          [&] { return journal_.count_attempt(refs, config_.max_attempts, status, reason); });
      result.failed += moved;
      {
        std::lock_guard lock(mu_);
        status_.failed_total += moved;
      }
      auto delay = backoff_.next();
      if (out.retry_after)
        delay =
            std::max(delay, std::min<std::chrono::milliseconds>(*out.retry_after, kMaxRetryAfter));
      back_off(delay, reason);
      return Step::Stop;
    }
    case FailureClass::Offline:
      back_off(backoff_.next(), short_reason(out, config_.api_key));
      return Step::Stop;
    case FailureClass::Misconfigured:
      back_off(backoff_.at_cap(), short_reason(out, config_.api_key));
      return Step::Stop;
    case FailureClass::Cancelled:
      return Step::Stop;
  }
  return Step::Stop;
}

void Uploader::back_off(std::chrono::milliseconds delay, const std::string& error) {
  std::lock_guard lock(mu_);
  backoff_until_ = std::chrono::steady_clock::now() + delay;
  status_.consecutive_failures = backoff_.failures();
  status_.last_error = error;
}

}  // namespace flightlog::detail
