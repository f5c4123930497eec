#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "sluice/app/daemon.hpp"
#include "sluice/core/clock.hpp"
#include "sluice/core/log.hpp"

namespace sluice {

namespace {

/// One JSON object per line: {"ts","level","logger","msg"}.
class json_formatter final : public spdlog::formatter {
public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count();
        nlohmann::json line = {
            {"ts", format_rfc3339_ms(ms)},
            {"level", spdlog::level::to_string_view(msg.level)},
            {"logger", std::string(msg.logger_name.data(), msg.logger_name.size())},
            {"msg", std::string(msg.payload.data(), msg.payload.size())},
        };
        const std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
        dest.append(text.data(), text.data() + text.size());
    }
    std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<json_formatter>(); }
};

void format_sink(spdlog::sinks::sink& sink, const log_config& cfg) {
    if (cfg.format == "json")
        sink.set_formatter(std::make_unique<json_formatter>());
    else
        sink.set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ [%n] %v");
}

}  // namespace

void reconfigure_logging(const log_config& cfg) {
    // Every module logger shares the one sink; an _mt sink takes its own lock to change format.
    for (const auto& sink : module_logger(log_module::main)->sinks()) format_sink(*sink, cfg);
    set_module_log_level(spdlog::level::from_str(cfg.level));
}

void setup_logging(const log_config& cfg) {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    format_sink(*sink, cfg);
    const auto level = spdlog::level::from_str(cfg.level);
    set_module_log_sink(sink, level);
    spdlog::set_default_logger(module_logger(log_module::main));
    spdlog::flush_every(std::chrono::seconds(1));
}

}  // namespace sluice
