#pragma once
// Building librdkafka handles: configuration from a map, logs routed to spdlog.

#include <librdkafka/rdkafka.h>

#include <map>
#include <string>
#include <string_view>

namespace sluice::kafka {

/// A conf with every property set and librdkafka's logs sent to the "kafka" logger;
/// nullptr (and error filled) when a property is refused.
rd_kafka_conf_t* make_conf(const std::map<std::string, std::string>& props, std::string& error);

/// Produces one message with its bytes copied: the key (none when empty), the value (a null value
/// when `null_value`), the headers (owned by librdkafka once this succeeds; may be null) and an
/// opaque for the delivery report. librdkafka's RD_KAFKA_V_* macros are C casts, so they stay here.
rd_kafka_resp_err_t produce_copy(rd_kafka_t* rk, const std::string& topic, std::string_view key, std::string_view value,
                                 bool null_value, rd_kafka_headers_t* headers, void* opaque);

}  // namespace sluice::kafka
