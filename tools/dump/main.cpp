// flightlog-dump: prints the records of a journal (NDJSON, a table or CSV), a summary of
// it (--stats), checks it (--verify) or follows it as records are committed (--follow).
//
// Safe beside a live logger: the journal is opened read-only, without the directory
// lock (only a journal's writer takes it), and read in transactions of at most --chunk
// records, so a long dump never pins pages the logger wants to reuse. Nothing is
// written to the journal.
//
// Files: selection (filters and the walk in sync order), render (formats), stats,
// verify, follow, progress (stderr progress line), stop_signal, journal_open (exit codes,
// open errors), time_text (--since/--until).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <string>

#include "follow.hpp"
#include "journal/journal_stats.hpp"
#include "journal_open.hpp"
#include "output.hpp"
#include "progress.hpp"
#include "render.hpp"
#include "selection.hpp"
#include "stats.hpp"
#include "stop_signal.hpp"
#include "verify.hpp"

namespace fd = flightlog::detail;
namespace ft = flightlog::tools;

namespace {

constexpr const char* kTool = "flightlog-dump";

constexpr const char* kFooter = R"(
Reads without the directory lock: a logger may run and write the journal meanwhile (only
a journal's writer is locked). Nothing is ever written to the journal.

Sync order: CRITICAL, HIGH, NORMAL, LOW (oldest first within each), then failed records.
Record ids are <journal id>-<seq>, as the uploader sends them.

Examples:
  flightlog-dump ./flightlog_offline
  flightlog-dump ./flightlog_offline --state failed --format table
  flightlog-dump ./flightlog_offline --priority critical,high --since 2026-11-27T00:00:00Z --limit 100
  flightlog-dump ./flightlog_offline --id 3f9c0a1b2c3d4e5f-42 --format csv > record.csv
  flightlog-dump ./flightlog_offline --stats
  flightlog-dump ./flightlog_offline --stats --format json
  flightlog-dump ./flightlog_offline --verify
  flightlog-dump ./flightlog_offline --follow --priority critical

Exit status:
  0  done (--follow: stopped by SIGINT or SIGTERM)
  1  usage error: unknown option, bad filter value, --id of another journal
  2  the journal cannot be opened: the directory or its data.mdb is missing, it is not
     a flightlog journal (or not LMDB at all), or it cannot be read
  3  damaged records were found: each is reported with its set, key and reason (on
     stderr; with --verify on stdout); the other records are processed
  4  the journal was written by a newer flightlog (a newer format version): use the
     tools of that version
  7  the output could not be written (a full disk, an I/O error): it is incomplete
When several apply, the highest is returned.)";

void print_damaged(fd::RecordSet set, std::uint64_t seq, const std::string& error) {
  std::cerr << kTool << ": damaged record in set '" << fd::record_set_name(set) << "' key " << seq
            << ": " << error << "\n";
}

int run_stats(std::unique_ptr<fd::Journal> journal, const ft::Selection& sel, bool filtered,
              bool json) {
  ft::StatsReport report;
  report.dir = journal->dir();
  report.journal_id = journal->journal_id();
  report.filtered = filtered;
  ft::Progress progress(kTool, ft::records_to_read(*journal, sel),
                        ft::Progress::stderr_is_terminal());
  ft::WalkOptions opts;
  opts.limit = sel.limit;
  opts.on_read = [&] { progress.tick(); };
  const ft::WalkResult w = ft::walk(
      *journal, sel, opts, [&](const ft::Visited& v) { report.records.add(v); },
      [&](fd::RecordSet set, std::uint64_t seq, const std::string& error) {
        ++report.records.damaged;
        progress.finish();
        print_damaged(set, seq, error);
      });
  progress.finish();
  const std::size_t unreadable = ft::report_read_errors(kTool, w);
  journal->refresh_counts();
  report.counts = journal->counts();
  report.next_seq = report.counts.next_seq;
  // LMDB's page accounting needs an environment of its own: close ours first.
  journal.reset();
  report.space_error = fd::read_journal_space(report.dir, report.space);
  std::string text;
  if (json) {
    ft::append_stats_json(text, report);
  } else {
    ft::append_stats_text(text, report);
  }
  ft::write_stdout(text);
  return report.records.damaged > 0 || unreadable > 0 ? ft::kExitDamaged : ft::kExitOk;
}

int run_verify(fd::Journal& journal, const ft::Selection& sel) {
  ft::Progress progress(kTool, ft::records_to_read(journal, sel),
                        ft::Progress::stderr_is_terminal());
  std::string text;
  const auto v = ft::verify_journal(
      journal, sel, [&] { progress.tick(); }, text);
  progress.finish();
  ft::write_stdout(text);
  return v.damaged > 0 ? ft::kExitDamaged : ft::kExitOk;
}

int run_dump(fd::Journal& journal, const ft::Selection& sel, ft::RecordFormat format, bool follow,
             std::chrono::milliseconds interval) {
  // With --follow, the first pass prints keys below next_seq as of now; the polls take
  // it from there, so no record is printed twice.
  const std::uint64_t start_next = journal.counts().next_seq;
  ft::RecordPrinter printer(format, journal.journal_id(), start_next);
  std::string text;
  printer.header(text);
  ft::Progress progress(kTool, ft::records_to_read(journal, sel),
                        !follow && ft::Progress::stderr_is_terminal());
  ft::WalkOptions opts;
  opts.limit = sel.limit;
  if (follow) opts.below_seq = start_next;
  opts.on_read = [&] { progress.tick(); };
  opts.between_chunks = [&] { return ft::write_stdout(text) && !ft::stop_requested(); };
  std::size_t damaged = 0;
  const ft::WalkResult w = ft::walk(
      journal, sel, opts,
      [&](const ft::Visited& v) { printer.record(text, v.seq, v.rec, ft::state_of(v.set)); },
      [&](fd::RecordSet set, std::uint64_t seq, const std::string& error) {
        ++damaged;
        progress.finish();
        print_damaged(set, seq, error);
      });
  ft::write_stdout(text);
  ft::flush_stdout();
  progress.finish();
  damaged += ft::report_read_errors(kTool, w);
  if (follow && !w.stopped && (sel.limit == 0 || w.selected < sel.limit)) {
    const auto f = ft::follow(journal, sel, printer, start_next,
                              sel.limit == 0 ? 0 : sel.limit - w.selected, interval, print_damaged);
    damaged += f.damaged;
  }
  ft::flush_stdout();
  if (damaged > 0) {
    std::cerr << kTool << ": " << damaged << " damaged record(s) or unreadable set(s)\n";
    return ft::kExitDamaged;
  }
  return ft::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Print the records of a flightlog journal (NDJSON, a table or CSV) in sync order, "
      "summarise it (--stats), check it (--verify) or follow it (--follow).",
      kTool};
  std::string dir;
  std::string format_name;
  bool stats = false;
  bool verify = false;
  bool follow = false;
  unsigned interval_ms = 200;
  ft::SelectionArgs selection_args;
  app.add_option("offline_dir", dir, "Journal directory (Options::offline_dir)")->required();
  app.add_option("--format", format_name,
                 "Records: ndjson (default), table or csv. With --stats: text (default) or "
                 "json");
  auto* stats_opt = app.add_flag("--stats", stats,
                                 "Print counts per priority and state, oldest and newest "
                                 "record, bytes, map size and pages instead of the records");
  auto* verify_opt = app.add_flag("--verify", verify,
                                  "Check every record (checksum, format, set, key) and print "
                                  "only a summary and the damaged ones");
  auto* follow_opt = app.add_flag("--follow", follow,
                                  "After the records present, keep printing records as they "
                                  "are committed, until SIGINT or SIGTERM");
  stats_opt->excludes(verify_opt)->excludes(follow_opt);
  verify_opt->excludes(follow_opt);
  app.add_option("--interval", interval_ms, "--follow: milliseconds between polls")
      ->check(CLI::Range(10u, 60'000u))
      ->capture_default_str();
  ft::add_selection_options(app, selection_args);
  app.footer(kFooter);
  if (const int rc = ft::parse_command_line(app, argc, argv); rc >= 0) return rc;

  ft::Selection sel;
  if (const std::string err = ft::parse_selection(selection_args, sel); !err.empty()) {
    std::cerr << kTool << ": " << err << "\n";
    return ft::kExitUsage;
  }
  bool stats_json = false;
  ft::RecordFormat format = ft::RecordFormat::Ndjson;
  if (stats) {
    stats_json = format_name == "json" || format_name == "ndjson";
    if (!stats_json && !format_name.empty() && format_name != "text") {
      std::cerr << kTool << ": --stats prints text or json, not '" << format_name << "'\n";
      return ft::kExitUsage;
    }
  } else if (!format_name.empty()) {
    const auto f = ft::parse_record_format(format_name);
    if (!f) {
      std::cerr << kTool << ": --format: '" << format_name
                << "' is not one of ndjson, table, csv\n";
      return ft::kExitUsage;
    }
    format = *f;
  }
  if (follow) ft::install_stop_handlers();

  std::unique_ptr<fd::Journal> journal;
  if (const int rc = ft::open_journal_read_only(kTool, dir, journal); rc != ft::kExitOk) return rc;
  if (const std::string err = ft::check_ids(sel, journal->journal_id()); !err.empty()) {
    std::cerr << kTool << ": " << err << "\n";
    return ft::kExitUsage;
  }
  int rc = 0;
  if (stats) {
    const bool filtered = !selection_args.priorities.empty() || !selection_args.state.empty() ||
                          !selection_args.since.empty() || !selection_args.until.empty() ||
                          !selection_args.ids.empty() || selection_args.limit != 0;
    rc = run_stats(std::move(journal), sel, filtered, stats_json);
  } else if (verify) {
    rc = run_verify(*journal, sel);
  } else {
    rc = run_dump(*journal, sel, format, follow, std::chrono::milliseconds(interval_ms));
  }
  return ft::output_failed(kTool) ? ft::kExitCannotWrite : rc;
}
