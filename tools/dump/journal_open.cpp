#include "journal_open.hpp"

#include <iostream>
#include <system_error>

#include "flightlog/error.hpp"

namespace flightlog::tools {

int parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  return -1;
}

int open_error_exit_code(const Error& e) noexcept {
  return dynamic_cast<const detail::NewerFormatError*>(&e) != nullptr ? kExitNewerFormat
                                                                      : kExitCannotOpen;
}

int open_journal_read_only(std::string_view tool, const std::filesystem::path& dir,
                           std::unique_ptr<detail::Journal>& out) {
  std::error_code ec;
  const auto st = std::filesystem::status(dir, ec);
  if (st.type() == std::filesystem::file_type::not_found) {
    std::cerr << tool << ": no journal at '" << dir.string() << "': the directory does not exist\n";
    return kExitCannotOpen;
  }
  if (!ec && st.type() != std::filesystem::file_type::directory) {
    std::cerr << tool << ": no journal at '" << dir.string() << "': not a directory\n";
    return kExitCannotOpen;
  }
  try {
    out = detail::Journal::open_read_only(dir);
  } catch (const Error& e) {
    std::cerr << tool << ": " << e.what() << "\n";
    return open_error_exit_code(e);
  }
  return kExitOk;
}

}  // namespace flightlog::tools
