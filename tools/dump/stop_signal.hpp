// SIGINT and SIGTERM as a request to stop: a tool that runs until told (dump --follow)
// or for long (replay) finishes its current step, prints its summary and exits with its
// documented code instead of dying mid-line.
#pragma once

#include <chrono>

namespace flightlog::tools {

// Installs handlers for SIGINT and SIGTERM that only record the request (without
// SA_RESTART, so a blocking sleep returns early).
void install_stop_handlers();

// True once SIGINT or SIGTERM arrived.
bool stop_requested() noexcept;

// Sleeps for `d`, in short steps; returns false early if a stop was requested.
bool sleep_unless_stopped(std::chrono::milliseconds d);

}  // namespace flightlog::tools
