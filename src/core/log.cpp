#include "sluice/core/log.hpp"

#include <array>

#include <spdlog/sinks/stdout_sinks.h>

namespace sluice {

namespace {

constexpr std::size_t module_count = static_cast<std::size_t>(log_module::generator) + 1;

std::array<std::shared_ptr<spdlog::logger>, module_count>& loggers() {
    static std::array<std::shared_ptr<spdlog::logger>, module_count> all = [] {
        std::array<std::shared_ptr<spdlog::logger>, module_count> made;
        auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
        for (std::size_t i = 0; i < module_count; ++i) {
            made[i] = std::make_shared<spdlog::logger>(to_string(static_cast<log_module>(i)), sink);
            // Registered, so that spdlog::flush_every and spdlog::apply_all reach them.
            if (!spdlog::get(made[i]->name())) spdlog::register_logger(made[i]);
        }
        return made;
    }();
    return all;
}

}  // namespace

const char* to_string(log_module m) {
    switch (m) {
        case log_module::main: return "main";
        case log_module::config: return "config";
        case log_module::ingest: return "ingest.kafka";
        case log_module::kafka: return "kafka";
        case log_module::preprocess: return "preprocess";
        case log_module::store: return "store";
        case log_module::postgres: return "store.postgres";
        case log_module::redis: return "store.redis";
        case log_module::query: return "query";
        case log_module::http: return "http";
        case log_module::generator: return "generator";
    }
    return "main";
}

const std::shared_ptr<spdlog::logger>& module_logger(log_module m) { return loggers()[static_cast<std::size_t>(m)]; }

void set_module_log_sink(const spdlog::sink_ptr& sink, spdlog::level::level_enum level) {
    for (auto& logger : loggers()) {
        logger->sinks().assign(1, sink);
        logger->set_level(level);
    }
}

void set_module_log_level(spdlog::level::level_enum level) {
    for (auto& logger : loggers()) logger->set_level(level);
}

}  // namespace sluice
