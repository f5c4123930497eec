#pragma once
// One named spdlog logger per module, made once, never looked up by name on a hot path.

#include <memory>

#include <spdlog/spdlog.h>

namespace sluice {

enum class log_module { main, config, ingest, kafka, preprocess, store, postgres, redis, query, http, generator };

/// The name a log line shows: "main", "config", "ingest.kafka", "kafka" (librdkafka's own lines),
/// "preprocess", "store", "store.postgres", "store.redis", "query", "http", "generator".
const char* to_string(log_module m);

/// The module's logger, never null. Until set_module_log_sink, loggers write to stderr at info.
const std::shared_ptr<spdlog::logger>& module_logger(log_module m);

/// Points every module logger at this sink and level. Called at start before the stages' threads.
void set_module_log_sink(const spdlog::sink_ptr& sink, spdlog::level::level_enum level);
/// Every module logger's level, while they are in use (a live reload).
void set_module_log_level(spdlog::level::level_enum level);

}  // namespace sluice
