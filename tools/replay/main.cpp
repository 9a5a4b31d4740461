// flightlog-replay: sends chosen records of a journal to an endpoint again, with the
// uploader's code and options, or copies them into another journal.
//
// The source journal is opened read-only, without the directory lock (a logger may run
// meanwhile), and is never modified: replayed records stay where they are, in their
// state. Selection as flightlog-dump (tools/dump/selection.hpp). Delivery in sender.hpp,
// copying in copy.hpp.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "copy.hpp"
#include "core/options_check.hpp"
#include "flightlog/error.hpp"
#include "journal_open.hpp"
#include "progress.hpp"
#include "selection.hpp"
#include "sender.hpp"
#include "stop_signal.hpp"
#include "uploader/endpoint.hpp"
#include "uploader/https_transport.hpp"

namespace fl = flightlog;
namespace fd = flightlog::detail;
namespace ft = flightlog::tools;

namespace {

constexpr const char* kTool = "flightlog-replay";
constexpr const char* kApiKeyVariable = "FLIGHTLOG_API_KEY";
constexpr std::size_t kListedFailures = 50;

constexpr const char* kFooter = R"(
The source journal is only read (read-only, without the directory lock, so a logger may
run meanwhile) and never modified: replayed records keep their place and state there.

Ids: --endpoint sends every record with its ORIGINAL id <journal id>-<seq>, rendered as
the uploader renders it, so replaying twice does not create duplicates at a receiver
that drops duplicates by id (a ClickHouse ReplacingMergeTree keyed by id, or the SDK's
API). --to-journal cannot keep ids: an id is the journal's id and its sequence number,
and the target journal has its own. Copies get new ids <target id>-<seq>, consecutive
in the source's sync order (the summary prints the range); they are queued in the
target with attempts reset. Do not ship a source and its copy to the same receiver.

The api key is read from the environment variable FLIGHTLOG_API_KEY only (never from
the command line, where other users can see it); it is sent in a header and never
printed. TLS verification is always on; --ca-file trusts a private CA.

Failure classes as the uploader's: 2xx accepted; other 4xx rejected (batches are split
to find the records at fault, which are listed); 5xx, 408, 429, timeouts retried with
full-jitter backoff up to --max-attempts posts, then given up and listed; an
unreachable receiver also counts attempts, and ends the replay; TLS verification
failures, redirects, 401, 403, 404 and the other 4xx that refuse the request itself
(405, 407, 410, 415, 421, 426, 431) end the replay at once.

Examples:
  FLIGHTLOG_API_KEY=... flightlog-replay ./flightlog_offline --state failed \
      --endpoint https://ingest.example.com/v1/records
  flightlog-replay ./flightlog_offline --since 2026-11-27T09:00:00Z --until 2026-11-27T10:00:00Z \
      --endpoint https://ch.example.com:8443/ --format clickhouse --clickhouse-user writer
  flightlog-replay ./flightlog_offline --id 3f9c0a1b2c3d4e5f-42 --endpoint https://127.0.0.1:8443/ \
      --ca-file ./test-ca.pem
  flightlog-replay ./flightlog_offline --state failed --to-journal ./retry_journal
  flightlog-replay ./flightlog_offline --priority critical --dry-run --endpoint https://x.example/

Exit status:
  0    every selected record was accepted (or copied); also when none was selected
  1    usage error: bad option or value, http:// without --allow-insecure-http (or to a
       host that is not loopback), --id of another journal, source and target the same
  2    a journal cannot be opened: the source is missing, not a flightlog journal or
       unreadable; the target is locked by a running Client or cannot be created
  3    damaged records in the selection were skipped (each reported on stderr)
  4    the source journal was written by a newer flightlog
  5    some records were not delivered: rejected, given up after --max-attempts, the
       receiver unreachable, or a copy could not be committed (listed in the summary)
  6    the receiver refused the set-up (TLS verification, 401/403/404 or another 4xx
       refusing the request itself, redirect, a status outside 200-599): nothing more
       was sent
  130  stopped by SIGINT or SIGTERM (the summary says what was sent)
When several apply, the highest is returned.)";

// A transport is cancelled from here on SIGINT / SIGTERM, so a post in flight returns
// at once instead of at its timeout.
class CancelOnStop {
 public:
  explicit CancelOnStop(fd::Transport* t) {
    if (t == nullptr) return;
    thread_ = std::jthread([t](std::stop_token st) {
      while (!st.stop_requested()) {
        if (ft::stop_requested()) {
          t->cancel();
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
  }

 private:
  std::jthread thread_;
};

struct Args {
  std::string source;
  std::string endpoint;
  std::string to_journal;
  std::string format = "ndjson";
  std::string clickhouse_table;
  std::string clickhouse_user;
  std::string ca_file;
  bool allow_insecure_http = false;
  bool gzip = false;
  bool dry_run = false;
  std::size_t batch_records = 0;
  std::size_t batch_bytes = 0;
  unsigned max_attempts = 0;
  unsigned backoff_base_ms = 0;
  // 30 s, not the Client's 5 min: a replay is run by someone waiting for it to end.
  unsigned backoff_cap_ms = 30000;
  unsigned connect_timeout_ms = 0;
  unsigned request_timeout_ms = 0;
  ft::SelectionArgs selection;
};

void add_options(CLI::App& app, Args& a, const fl::Options& defaults) {
  a.clickhouse_table = defaults.clickhouse_table;
  a.clickhouse_user = defaults.clickhouse_user;
  a.batch_records = defaults.upload_batch_max_records;
  a.batch_bytes = defaults.upload_batch_max_bytes;
  a.max_attempts = defaults.max_attempts;
  a.backoff_base_ms = static_cast<unsigned>(defaults.backoff_base.count());
  a.connect_timeout_ms = static_cast<unsigned>(defaults.connect_timeout.count());
  a.request_timeout_ms = static_cast<unsigned>(defaults.request_timeout.count());
  app.add_option("source_dir", a.source, "Journal to replay from (read only)")->required();
  auto* endpoint = app.add_option("--endpoint", a.endpoint,
                                  "Send the records to this URL (https://...), as the uploader "
                                  "would (Options::endpoint)");
  auto* to_journal = app.add_option("--to-journal", a.to_journal,
                                    "Copy the records into the journal in this directory "
                                    "(created if missing); copies get new ids");
  endpoint->excludes(to_journal);
  const std::string g =
      "Delivery (--endpoint; defaults as the Client's Options, except --backoff-cap-ms)";
  app.add_option("--format", a.format, "Body format: ndjson or clickhouse (Options::upload_format)")
      ->check(CLI::IsMember({"ndjson", "clickhouse"}))
      ->capture_default_str()
      ->group(g);
  app.add_option("--clickhouse-table", a.clickhouse_table, "ClickHouse table")
      ->capture_default_str()
      ->group(g);
  app.add_option("--clickhouse-user", a.clickhouse_user, "ClickHouse user")
      ->capture_default_str()
      ->group(g);
  app.add_option("--ca-file", a.ca_file, "Trust the CAs in this PEM file instead of the system's")
      ->check(CLI::ExistingFile)
      ->group(g);
  app.add_flag("--allow-insecure-http", a.allow_insecure_http,
               "Allow an http:// endpoint on a loopback host (tests: records and key in clear)")
      ->group(g);
  app.add_flag("--gzip", a.gzip, "gzip request bodies")->group(g);
  app.add_option("--batch-records", a.batch_records, "Most records per request")
      ->capture_default_str()
      ->group(g);
  app.add_option("--batch-bytes", a.batch_bytes, "Most body bytes per request (before gzip)")
      ->capture_default_str()
      ->group(g);
  app.add_option("--max-attempts", a.max_attempts,
                 "Posts of a batch before its records are given up")
      ->capture_default_str()
      ->group(g);
  app.add_option("--backoff-base-ms", a.backoff_base_ms, "Backoff base")
      ->capture_default_str()
      ->group(g);
  app.add_option("--backoff-cap-ms", a.backoff_cap_ms,
                 "Backoff cap, also the longest Retry-After obeyed (the Client's is 5 min)")
      ->capture_default_str()
      ->group(g);
  app.add_option("--connect-timeout-ms", a.connect_timeout_ms, "Connect timeout")
      ->capture_default_str()
      ->group(g);
  app.add_option("--request-timeout-ms", a.request_timeout_ms, "Timeout of one request")
      ->capture_default_str()
      ->group(g);
  app.add_flag("--dry-run", a.dry_run, "Select, render and count batches; send nothing")->group(g);
  ft::add_selection_options(app, a.selection);
}

int usage(const std::string& what) {
  std::cerr << kTool << ": " << what << "\n";
  return ft::kExitUsage;
}

std::string count_of(std::size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// The command-line flag that sets each Options field make_delivery() fills, so that an
// error of the Client's checks ("invalid option max_attempts: ...") names what to change.
constexpr std::pair<std::string_view, std::string_view> kFlagOfOption[] = {
    {"endpoint", "--endpoint"},
    {"api_key", "FLIGHTLOG_API_KEY"},
    {"upload_format", "--format"},
    {"clickhouse_table", "--clickhouse-table"},
    {"clickhouse_user", "--clickhouse-user"},
    {"ca_file", "--ca-file"},
    {"upload_batch_max_records", "--batch-records"},
    {"upload_batch_max_bytes", "--batch-bytes"},
    {"max_attempts", "--max-attempts"},
    {"backoff_base", "--backoff-base-ms"},
    {"backoff_cap", "--backoff-cap-ms"},
    {"connect_timeout", "--connect-timeout-ms"},
    {"handshake_timeout", "--connect-timeout-ms"},
    {"request_timeout", "--request-timeout-ms"},
};

// "invalid option <field>: <rule>" with the flag that sets <field> added; a refused
// http:// endpoint also names the flag that allows one.
std::string with_flag(std::string what) {
  if (what.find("allow_insecure_http") != std::string::npos) {
    return what + " (--allow-insecure-http allows it, for loopback hosts only)";
  }
  constexpr std::string_view kPrefix = "invalid option ";
  if (what.rfind(kPrefix, 0) != 0) return what;
  const std::string_view field =
      std::string_view(what).substr(kPrefix.size(), what.find(':') - kPrefix.size());
  for (const auto& [option, flag] : kFlagOfOption) {
    if (field == option) return what + " (set by " + std::string(flag) + ")";
  }
  return what;
}

// Turns the delivery options into the Client's Options, checks them with the Client's
// own checks, and makes the uploader's transport. Returns -1, or the exit code.
int make_delivery(const Args& a, fl::Options& options, ft::SendConfig& send,
                  std::unique_ptr<fd::Transport>& transport) {
  if (const char* key = std::getenv(kApiKeyVariable); key != nullptr) options.api_key = key;
  options.endpoint = a.endpoint;
  options.upload_format =
      a.format == "clickhouse" ? fl::UploadFormat::ClickHouse : fl::UploadFormat::Ndjson;
  options.clickhouse_table = a.clickhouse_table;
  options.clickhouse_user = a.clickhouse_user;
  options.ca_file = a.ca_file;
  options.allow_insecure_http = a.allow_insecure_http;
  options.upload_gzip = a.gzip;
  options.upload_batch_max_records = a.batch_records;
  options.upload_batch_max_bytes = a.batch_bytes;
  // Clamped only to fit the field; the Client's check refuses anything over its limit.
  options.max_attempts = static_cast<std::uint16_t>(std::min(a.max_attempts, 65535u));
  options.backoff_base = std::chrono::milliseconds(a.backoff_base_ms);
  options.backoff_cap = std::chrono::milliseconds(a.backoff_cap_ms);
  options.connect_timeout = std::chrono::milliseconds(a.connect_timeout_ms);
  options.handshake_timeout = std::chrono::milliseconds(a.connect_timeout_ms);
  options.request_timeout = std::chrono::milliseconds(a.request_timeout_ms);
  try {
    fd::validate_options(options);
    transport = fd::make_https_transport(options, send.target);
  } catch (const fl::Error& e) {
    return usage(with_flag(e.what()));
  }
  send.format = options.upload_format;
  send.api_key = options.api_key;
  send.clickhouse_table = options.clickhouse_table;
  send.clickhouse_user = options.clickhouse_user;
  send.gzip = options.upload_gzip;
  send.batch_max_records = options.upload_batch_max_records;
  send.batch_max_bytes = options.upload_batch_max_bytes;
  send.max_attempts = options.max_attempts;
  send.backoff_base = options.backoff_base;
  send.backoff_cap = options.backoff_cap;
  send.dry_run = a.dry_run;
  return -1;
}

// Opens the --to-journal target for writing (its directory lock included). Returns -1,
// or the exit code.
int open_target(const Args& a, std::unique_ptr<fd::Journal>& target) {
  std::error_code ec;
  const auto src = std::filesystem::weakly_canonical(a.source, ec);
  const auto dst = std::filesystem::weakly_canonical(a.to_journal, ec);
  if (src == dst) return usage("--to-journal: the target is the source journal itself");
  try {
    fd::JournalConfig config;
    config.dir = a.to_journal;
    target = fd::Journal::open_for_writing(config);
  } catch (const fl::Error& e) {
    std::cerr << kTool << ": target journal: " << e.what() << "\n";
    return ft::open_error_exit_code(e);
  }
  return -1;
}

// Prints what the copy did; returns its exit code.
int report_copy(const Args& a, const fd::Journal& target, const ft::CopySummary& c,
                std::size_t selected) {
  std::cout << "copied: " << c.copied << " into journal " << target.journal_id() << " at '"
            << a.to_journal << "'";
  if (c.copied > 0) {
    std::cout << " as new ids " << fd::record_id(target.journal_id(), c.first_seq) << " .. "
              << fd::record_id(target.journal_id(), c.last_seq) << " (in sync order)";
  }
  std::cout << "\n";
  if (c.copied == selected) return ft::kExitOk;
  std::cout << "not copied: " << selected - c.copied
            << (c.error.empty() ? "" : " (" + c.error + ")") << "\n";
  return ft::kExitNotDelivered;
}

// Prints what the delivery did; returns its exit code.
int report_send(const Args& a, const ft::SendSummary& s) {
  const fd::ParsedEndpoint ep = fd::parse_endpoint(a.endpoint, true);
  std::cout << "endpoint: " << ep.scheme << "://" << ep.authority() << " (" << a.format << ")\n";
  if (a.dry_run) {
    std::cout << "dry run: " << count_of(s.queued_for_sending, "record", "records") << " in "
              << count_of(s.batches, "batch", "batches") << " would be sent; nothing was sent\n";
    return ft::kExitOk;
  }
  std::cout << "accepted: " << s.accepted << "\n";
  std::cout << "rejected: " << s.rejected << "\n";
  std::cout << "gave up: " << s.gave_up << "\n";
  std::cout << "not sent: " << s.not_sent() << "\n";
  std::cout << "requests: " << s.requests << " (" << count_of(s.retries, "retry", "retries")
            << ")\n";
  if (!s.not_accepted.empty()) {
    std::cout << "not accepted:\n";
    for (std::size_t i = 0; i < s.not_accepted.size() && i < kListedFailures; ++i) {
      std::cout << "  " << s.not_accepted[i].id << "  " << s.not_accepted[i].reason << "\n";
    }
    if (s.not_accepted.size() > kListedFailures) {
      std::cout << "  ... and " << s.not_accepted.size() - kListedFailures << " more\n";
    }
  }
  if (!s.stop_reason.empty()) std::cout << "stopped: " << s.stop_reason << "\n";
  if (s.misconfigured) return ft::kExitMisconfigured;
  if (s.rejected > 0 || s.gave_up > 0 || s.unreachable) return ft::kExitNotDelivered;
  return ft::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Send chosen records of a flightlog journal to an endpoint again (with their original "
      "ids), or copy them into another journal. The source journal is not modified.",
      kTool};
  fl::Options options;  // defaults, then the command line
  Args a;
  add_options(app, a, options);
  app.footer(kFooter);
  if (const int rc = ft::parse_command_line(app, argc, argv); rc >= 0) return rc;
  if (a.endpoint.empty() == a.to_journal.empty()) {
    return usage("say where the records go: --endpoint URL or --to-journal DIR");
  }
  if (a.dry_run && a.endpoint.empty()) return usage("--dry-run goes with --endpoint");
  ft::Selection sel;
  if (const std::string err = ft::parse_selection(a.selection, sel); !err.empty()) {
    return usage(err);
  }
  std::unique_ptr<fd::Transport> transport;
  ft::SendConfig send;
  if (!a.endpoint.empty()) {
    if (const int rc = make_delivery(a, options, send, transport); rc >= 0) return rc;
  }

  ft::install_stop_handlers();
  std::unique_ptr<fd::Journal> source;
  if (const int rc = ft::open_journal_read_only(kTool, a.source, source); rc != ft::kExitOk) {
    return rc;
  }
  if (const std::string err = ft::check_ids(sel, source->journal_id()); !err.empty()) {
    return usage(err);
  }
  std::unique_ptr<fd::Journal> target;
  if (!a.to_journal.empty()) {
    if (const int rc = open_target(a, target); rc >= 0) return rc;
  }

  ft::Sender sender(send, source->journal_id(), transport.get());
  std::unique_ptr<ft::Copier> copier;
  if (target) copier = std::make_unique<ft::Copier>(*target);
  CancelOnStop cancel_on_stop(transport.get());
  ft::Progress progress(kTool, ft::records_to_read(*source, sel),
                        ft::Progress::stderr_is_terminal());
  std::size_t damaged = 0;
  ft::WalkOptions opts;
  opts.limit = sel.limit;
  opts.on_read = [&] { progress.tick(); };
  // After a failed commit or a stop of the sender, the walk goes on to count what was
  // selected (and not sent); only a signal ends it early.
  opts.between_chunks = [&] {
    if (ft::stop_requested()) return false;
    if (copier) {
      copier->commit();
    } else {
      sender.send_pending(false);
    }
    return true;
  };
  const ft::WalkResult walked = ft::walk(
      *source, sel, opts,
      [&](const ft::Visited& v) {
        if (copier) {
          copier->add(v.bytes, v.rec.priority);
        } else {
          sender.add(v.seq, v.rec);
        }
      },
      [&](fd::RecordSet set, std::uint64_t seq, const std::string& error) {
        ++damaged;
        progress.finish();
        std::cerr << kTool << ": skipped damaged record in set '" << fd::record_set_name(set)
                  << "' key " << seq << " (id " << fd::record_id(source->journal_id(), seq)
                  << "): " << error << "\n";
      });
  if (!ft::stop_requested()) {
    if (copier) {
      copier->commit();
    } else {
      sender.send_pending(true);
    }
  }
  progress.finish();
  damaged += ft::report_read_errors(kTool, walked);

  std::cout << "source: journal " << source->journal_id() << " at '" << a.source
            << "' (read only, not modified)\n";
  std::cout << "selected: " << count_of(walked.selected, "record", "records");
  if (damaged > 0)
    std::cout << " (" << count_of(damaged, "damaged record", "damaged records") << " skipped)";
  std::cout << "\n";
  int rc = copier ? report_copy(a, *target, copier->summary(), walked.selected)
                  : report_send(a, sender.summary());
  if (damaged > 0) rc = std::max<int>(rc, ft::kExitDamaged);
  if (ft::stop_requested()) {
    std::cout << "interrupted: stopped by a signal before the end\n";
    rc = ft::kExitInterrupted;
  }
  std::cout.flush();
  return rc;
}
