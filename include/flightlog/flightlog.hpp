// flightlog/flightlog.hpp: the one header a program includes.
//
//   flightlog::Client client(flightlog::Options{.offline_dir = "/var/lib/app/flightlog"});
//   auto s = client.schema({"feature1", "feature2"}, {"prediction"});
//   client.log_prediction(s, {x1, x2}, {p});            // hot loop: values only
//   client.flush();                                     // wait until committed
#pragma once

#include "flightlog/client.hpp"
#include "flightlog/error.hpp"
#include "flightlog/options.hpp"
#include "flightlog/value.hpp"
