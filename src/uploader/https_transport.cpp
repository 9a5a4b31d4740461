#include "uploader/https_transport.hpp"

#include "flightlog/error.hpp"

namespace flightlog::detail {

std::unique_ptr<Transport> make_https_transport(const Options&, std::string&) {
  throw Error("invalid option endpoint: uploading is being integrated");  // TEMPORARY
}

}  // namespace flightlog::detail
