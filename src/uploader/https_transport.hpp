// The Transport of the uploader on the Beast HTTPS client (https_client.hpp): turns the
// Client's Options into a connection configuration and the client's outcomes into
// PostOutcome.
#pragma once

#include <memory>
#include <string>

#include "flightlog/options.hpp"
#include "uploader/transport.hpp"

namespace flightlog::detail {

// Parses and checks `options.endpoint` (throws flightlog::Error naming the problem) and
// returns a transport for it. `target` receives the endpoint's path and query.
std::unique_ptr<Transport> make_https_transport(const Options& options, std::string& target);

}  // namespace flightlog::detail
