#include "kafka_util.hpp"

#include "sluice/core/log.hpp"

#include <spdlog/spdlog.h>

namespace sluice::kafka {

namespace {
void log_cb(const rd_kafka_t*, int level, const char* fac, const char* buf) {
    const auto& log = module_logger(log_module::kafka);
    // syslog levels: 0..3 error, 4 warning, 5..6 info, 7 debug
    const auto lvl = level <= 3 ? spdlog::level::err
                     : level == 4 ? spdlog::level::warn
                     : level <= 6 ? spdlog::level::info
                                  : spdlog::level::debug;
    log->log(lvl, "{}: {}", fac, buf);
}
}  // namespace

rd_kafka_conf_t* make_conf(const std::map<std::string, std::string>& props, std::string& error) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char errstr[512];
    for (const auto& [k, v] : props) {
        if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
            error = k + ": " + errstr;
            rd_kafka_conf_destroy(conf);
            return nullptr;
        }
    }
    rd_kafka_conf_set_log_cb(conf, log_cb);
    return conf;
}

rd_kafka_resp_err_t produce_copy(rd_kafka_t* rk, const std::string& topic, std::string_view key, std::string_view value,
                                 bool null_value, rd_kafka_headers_t* headers, void* opaque) {
    auto* key_bytes = key.empty() ? nullptr : const_cast<char*>(key.data());
    auto* value_bytes = null_value ? nullptr : const_cast<char*>(value.data());
    const std::size_t value_size = null_value ? 0 : value.size();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"
    if (headers)
        return rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(key_bytes, key.size()),
                                 RD_KAFKA_V_VALUE(value_bytes, value_size), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    return rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(key_bytes, key.size()),
                             RD_KAFKA_V_VALUE(value_bytes, value_size), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
#pragma GCC diagnostic pop
}

}  // namespace sluice::kafka
