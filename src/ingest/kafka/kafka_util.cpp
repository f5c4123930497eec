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

}  // namespace sluice::kafka
