#include "integration/support/stack.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>

namespace sluice::it {

nlohmann::json user_activity_config(const test_stack& stack, const std::string& group_id, int http_port,
                                    const std::string& topic) {
    using nlohmann::json;
    return json{
        {"kafka",
         {{"brokers", stack.kafka.bootstraps()},
          {"group_id", group_id},
          {"consumer_threads", 2},
          {"properties", {{"session.timeout.ms", "6000"}, {"auto.offset.reset", "earliest"}}}}},
        {"feature_sets",
         json::array({{{"name", "user_activity"},
                       {"topic", topic},
                       {"key", "user_id"},
                       {"event_time", "ts"},
                       {"fields",
                        {{"clicks", {{"type", "int"}, {"required", true}}},
                         {"spend", {{"type", "double"}, {"min", 0}}},
                         {"country", {{"type", "string"}, {"default", "??"}}},
                         {"premium", {{"type", "bool"}}}}},
                       {"ttl", "24h"}}})},
        {"pipeline",
         {{"preprocess_threads", 2}, {"queue_capacity", 4096}, {"batch_max_records", 1000}, {"batch_linger_ms", 5}}},
        {"postgres", {{"dsn", stack.postgres.dsn()}, {"schema", default_schema}}},
        {"redis", {{"host", "127.0.0.1"}, {"port", stack.redis.port()}, {"key_prefix", default_key_prefix}}},
        {"http", {{"listen", "127.0.0.1:" + std::to_string(http_port)}, {"threads", 1}}},
        {"log", {{"level", "info"}, {"format", "text"}}},
    };
}

std::string random_suffix() {
    std::random_device rd;
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(rd()));
    return buf;
}

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string rfc3339_ms(std::int64_t epoch_ms) {
    std::time_t secs = static_cast<std::time_t>(epoch_ms / 1000);
    int ms = static_cast<int>(epoch_ms % 1000);
    if (ms < 0) {
        ms += 1000;
        --secs;
    }
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    return buf;
}

long long env_int(const char* name, long long fallback) {
    const char* text = std::getenv(name);
    if (text == nullptr || *text == '\0') return fallback;
    char* end = nullptr;
    const long long v = std::strtoll(text, &end, 10);
    if (end == text || *end != '\0' || v <= 0) return fallback;
    return v;
}

}  // namespace sluice::it
