// flightlog-dump: prints every record of a journal as one JSON object per line, in sync
// order (CRITICAL, HIGH, NORMAL, LOW, oldest first within each; then the failed set).
//
// Safe beside a live logger: the journal is opened read-only, without the directory
// lock, and read in transactions of at most --chunk records, so a long dump never pins
// pages the logger wants to reuse.
//
// Exit status: 0 all records printed; 1 usage error; 2 the journal cannot be opened
// (missing, not a journal, unknown format); 3 damaged records were found (each is
// reported on stderr with its set and key; the others are printed).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <string>

#include "flightlog/error.hpp"
#include "format/json.hpp"
#include "format/record.hpp"
#include "journal/journal.hpp"

namespace fl = flightlog;
namespace fd = flightlog::detail;

int main(int argc, char** argv) {
  CLI::App app{"Print the records of a flightlog journal as NDJSON, in sync order."};
  std::string dir;
  std::size_t chunk = 1024;
  app.add_option("offline_dir", dir, "Journal directory (Options::offline_dir)")->required();
  app.add_option("--chunk", chunk, "Records read per read transaction")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
  app.footer(
      "Examples:\n  flightlog-dump ./flightlog_offline\n  flightlog-dump /var/lib/app/flightlog | "
      "head\n\nExit status: 0 ok, 1 usage, 2 journal cannot be opened, 3 damaged records found.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 1;
  }

  std::unique_ptr<fd::Journal> journal;
  try {
    journal = fd::Journal::open_read_only(dir);
  } catch (const fl::Error& e) {
    std::cerr << "flightlog-dump: " << e.what() << "\n";
    return 2;
  }

  std::size_t damaged = 0;
  std::string line;
  fd::DecodedRecord rec;
  for (std::size_t s = 0; s < fd::kRecordSets; ++s) {
    const auto set = static_cast<fd::RecordSet>(s);
    const auto state =
        set == fd::RecordSet::Failed ? fd::RecordState::Failed : fd::RecordState::Queued;
    std::uint64_t from = 0;
    do {
      from =
          journal->scan(set, from, chunk, [&](std::uint64_t seq, std::span<const std::byte> bytes) {
            const std::string err = fd::decode_record(bytes, rec);
            if (!err.empty()) {
              ++damaged;
              std::cerr << "flightlog-dump: damaged record in set '" << fd::record_set_name(set)
                        << "' key " << seq << ": " << err << "\n";
              return;
            }
            line.clear();
            fd::append_record_json(line, journal->journal_id(), seq, rec, state);
            line.push_back('\n');
            std::fwrite(line.data(), 1, line.size(), stdout);
          });
    } while (from != 0);
  }
  std::fflush(stdout);
  if (damaged > 0) {
    std::cerr << "flightlog-dump: " << damaged << " damaged record(s)\n";
    return 3;
  }
  return 0;
}
