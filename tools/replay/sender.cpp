#include "sender.hpp"

#include <cctype>
#include <random>

#include "format/json.hpp"
#include "stop_signal.hpp"
#include "uploader/uploader.hpp"

namespace flightlog::tools {

namespace fd = flightlog::detail;

Sender::Sender(const SendConfig& config, std::string journal_id, fd::Transport* transport)
    : config_(config),
      journal_id_(std::move(journal_id)),
      transport_(transport),
      backoff_(config.backoff_base, config.backoff_cap, std::random_device{}()) {}

void Sender::add(std::uint64_t seq, const fd::DecodedRecord& rec) {
  ++summary_.queued_for_sending;
  if (stopped_) return;
  if (config_.format == UploadFormat::ClickHouse) {
    fd::append_clickhouse_row(body_, journal_id_, seq, rec);
  } else {
    fd::append_record_json(body_, journal_id_, seq, rec, fd::RecordState::Queued,
                           fd::JsonRecordOptions{.include_delivery_state = false});
  }
  body_.push_back('\n');
  ends_.push_back(body_.size());
  seqs_.push_back(seq);
}

std::string Sender::reason_of(const fd::PostOutcome& o) const {
  return fd::short_reason(o, config_.api_key);
}

fd::PostRequest Sender::request_for(std::size_t begin, std::size_t end) const {
  fd::PostRequest req;
  req.gzip = config_.gzip;
  req.body.assign(body_, start(begin), start(end) - start(begin));
  fd::address_post(req,
                   {config_.format, config_.target, config_.api_key, config_.clickhouse_table,
                    config_.clickhouse_user},
                   journal_id_, seqs_[begin], seqs_[end - 1], end - begin);
  return req;
}

Sender::Step Sender::send_range(std::size_t begin, std::size_t end) {
  const std::size_t n = end - begin;
  for (std::uint16_t attempt = 1;; ++attempt) {
    if (stop_requested()) {
      summary_.interrupted = true;
      return Step::Stop;
    }
    ++summary_.requests;
    const fd::PostOutcome out = transport_->post(request_for(begin, end));
    const fd::FailureClass cls = fd::classify(out, config_.format == UploadFormat::ClickHouse);
    switch (cls) {
      case fd::FailureClass::None:
        summary_.accepted += n;
        backoff_.reset();
        return Step::Continue;
      case fd::FailureClass::Rejected: {
        if (n == 1) {
          ++summary_.rejected;
          summary_.not_accepted.push_back(
              {fd::record_id(journal_id_, seqs_[begin]), "rejected: " + reason_of(out)});
          return Step::Continue;
        }
        const std::size_t mid = begin + n / 2;
        if (send_range(begin, mid) == Step::Stop) return Step::Stop;
        return send_range(mid, end);
      }
      case fd::FailureClass::Retryable:
      case fd::FailureClass::Offline: {
        const bool offline = cls == fd::FailureClass::Offline;
        if (attempt >= config_.max_attempts) {
          const std::string reason = reason_of(out);
          if (offline) {
            summary_.unreachable = true;
            summary_.stop_reason = "the receiver is unreachable after " + std::to_string(attempt) +
                                   " attempt(s): " + reason;
            return Step::Stop;
          }
          summary_.gave_up += n;
          for (std::size_t i = begin; i < end; ++i) {
            summary_.not_accepted.push_back(
                {fd::record_id(journal_id_, seqs_[i]),
                 "gave up after " + std::to_string(attempt) + " attempt(s): " + reason});
          }
          return Step::Continue;
        }
        auto delay = backoff_.next();
        if (out.retry_after)
          delay = std::max(delay, std::min(*out.retry_after, config_.backoff_cap));
        ++summary_.retries;
        if (!sleep_unless_stopped(delay)) {
          summary_.interrupted = true;
          return Step::Stop;
        }
        continue;
      }
      case fd::FailureClass::Misconfigured:
        summary_.misconfigured = true;
        summary_.stop_reason =
            "the receiver refused the set-up (fix it, then replay again): " + reason_of(out);
        return Step::Stop;
      case fd::FailureClass::Cancelled:
        summary_.interrupted = true;
        return Step::Stop;
    }
  }
}

void Sender::compact() {
  if (next_ == 0) return;
  const std::size_t consumed = start(next_);
  body_.erase(0, consumed);
  ends_.erase(ends_.begin(), ends_.begin() + static_cast<std::ptrdiff_t>(next_));
  seqs_.erase(seqs_.begin(), seqs_.begin() + static_cast<std::ptrdiff_t>(next_));
  for (auto& e : ends_) e -= consumed;
  next_ = 0;
}

bool Sender::send_pending(bool final) {
  while (!stopped_ && next_ < ends_.size()) {
    // The next batch: as many records as fit both bounds (at least one).
    std::size_t end = next_ + 1;
    while (end < ends_.size() && end - next_ < config_.batch_max_records &&
           ends_[end] - start(next_) <= config_.batch_max_bytes) {
      ++end;
    }
    const bool full = end < ends_.size() || end - next_ >= config_.batch_max_records;
    if (!full && !final) break;  // wait for more records
    ++summary_.batches;
    if (!config_.dry_run && send_range(next_, end) == Step::Stop) stopped_ = true;
    next_ = end;
  }
  if (stopped_) {
    body_.clear();
    ends_.clear();
    seqs_.clear();
    next_ = 0;
  } else {
    compact();
  }
  return !stopped_;
}

}  // namespace flightlog::tools
