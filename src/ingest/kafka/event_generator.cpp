#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "kafka_util.hpp"
#include "sluice/core/clock.hpp"
#include "sluice/ingest/kafka_ingest.hpp"

namespace sluice {

namespace {

// Values that look like what the field name suggests, within the field's bounds.
nlohmann::json make_value(const field_config& f, std::mt19937_64& rng, std::int64_t now) {
    auto uniform = [&](double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); };
    const double lo = f.min.value_or(0);
    switch (f.type) {
        case field_type::int64: {
            const double hi = f.max.value_or(lo + 50);
            return static_cast<std::int64_t>(std::floor(uniform(lo, hi + 1 - 1e-9)));
        }
        case field_type::float64: {
            const double hi = f.max.value_or(lo + 250);
            return std::round(uniform(lo, hi) * 100) / 100;
        }
        case field_type::boolean: return uniform(0, 1) < 0.2;
        case field_type::string: {
            static const char* countries[] = {"DE", "US", "FR", "JP", "BR", "IN", "GB", "NL"};
            static const char* devices[] = {"ios", "android", "web"};
            if (f.name.find("country") != std::string::npos) return countries[rng() % 8];
            if (f.name.find("device") != std::string::npos || f.name.find("platform") != std::string::npos)
                return devices[rng() % 3];
            std::string v = "v";  // (built in steps: g++ 12 -O3 warns falsely on "v" + to_string)
            v += std::to_string(rng() % 100);
            return v;
        }
        case field_type::timestamp: return format_rfc3339_ms(now - static_cast<std::int64_t>(rng() % 86400000));
        case field_type::json: return {{"items", rng() % 5}, {"source", "generator"}};
    }
    return nullptr;
}

std::string key_prefix(const std::string& key_field) {
    auto pos = key_field.find("_id");
    return (pos != std::string::npos && pos > 0 ? key_field.substr(0, pos) : std::string("key")) + "-";
}

}  // namespace

struct event_generator::impl {
    impl(const config& c, std::string b) : cfg(c), bootstrap(std::move(b)) {}
    const config& cfg;
    std::string bootstrap;
    rd_kafka_t* rk = nullptr;
    std::thread thread;
    std::atomic<bool> running{false};
    std::atomic<std::uint64_t> produced{0};

    void run() {
        std::mt19937_64 rng(std::random_device{}());
        const auto interval = std::chrono::duration<double>(1.0 / cfg.generator.events_per_sec);
        auto next = std::chrono::steady_clock::now();
        std::size_t set = 0;
        while (running.load()) {
            const auto& fs = cfg.feature_sets[set++ % cfg.feature_sets.size()];
            const std::int64_t now = now_ms();
            nlohmann::json event;
            std::string key = key_prefix(fs.key_field);
            key += std::to_string(rng() % static_cast<unsigned>(cfg.generator.keys));
            event[fs.key_field] = key;
            event[fs.event_time_field] = now;
            for (const auto& f : fs.fields) event[f.name] = make_value(f, rng, now);
            const std::string payload = event.dump();
            auto err = kafka::produce_copy(rk, fs.topic, key, payload, false, nullptr, nullptr);
            if (!err) produced.fetch_add(1, std::memory_order_relaxed);
            rd_kafka_poll(rk, 0);
            next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(interval);
            const auto now_tp = std::chrono::steady_clock::now();
            if (next > now_tp) {
                std::this_thread::sleep_until(std::min(next, now_tp + std::chrono::milliseconds(200)));
            } else if (now_tp - next > std::chrono::seconds(1)) {
                next = now_tp;  // fell behind: do not burst to catch up
            }
        }
        rd_kafka_flush(rk, 2000);
    }
};

event_generator::event_generator(const config& cfg, std::string bootstrap_servers)
    : impl_(std::make_unique<impl>(cfg, std::move(bootstrap_servers))) {}

event_generator::~event_generator() {
    stop();
    if (impl_->rk) rd_kafka_destroy(impl_->rk);
}

status event_generator::start() {
    std::string error;
    rd_kafka_conf_t* conf = kafka::make_conf(
        {{"bootstrap.servers", impl_->bootstrap}, {"client.id", "sluice-generator"}, {"linger.ms", "5"}}, error);
    if (!conf) return status::failure(error);
    char errstr[512];
    impl_->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!impl_->rk) {
        rd_kafka_conf_destroy(conf);
        return status::failure(std::string("generator producer: ") + errstr);
    }
    impl_->running.store(true);
    impl_->thread = std::thread([p = impl_.get()] { p->run(); });
    return status::success();
}

void event_generator::stop() {
    impl_->running.store(false);
    if (impl_->thread.joinable()) impl_->thread.join();
}

std::uint64_t event_generator::produced() const { return impl_->produced.load(); }

}  // namespace sluice
