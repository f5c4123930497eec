#pragma once
// Building librdkafka handles: configuration from a map, logs routed to spdlog.

#include <librdkafka/rdkafka.h>

#include <map>
#include <string>

namespace sluice::kafka {

/// A conf with every property set and librdkafka's logs sent to the "kafka" logger;
/// nullptr (and error filled) when a property is refused.
rd_kafka_conf_t* make_conf(const std::map<std::string, std::string>& props, std::string& error);

}  // namespace sluice::kafka
