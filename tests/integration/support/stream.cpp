#include "integration/support/stream.hpp"

#include <algorithm>
#include <iterator>
#include <regex>
#include <stdexcept>

#include "integration/support/stack.hpp"

namespace sluice::it {

using nlohmann::json;

json stream_event::values() const {
    json v;
    v["clicks"] = clicks;
    v["spend"] = spend;
    v["country"] = country;
    v["premium"] = premium ? json(*premium) : json(nullptr);
    return v;
}

json event_message(const stream_event& e, bool ts_as_text) {
    json msg{{"user_id", e.key}};
    msg["ts"] = ts_as_text ? json(rfc3339_ms(e.ts)) : json(e.ts);
    msg["clicks"] = e.clicks;
    msg["spend"] = e.spend;
    if (e.country != "??") msg["country"] = e.country;
    if (e.premium) msg["premium"] = *e.premium;
    return msg;
}

newest_map newest_events(const std::vector<stream_event>& events) {
    newest_map out;
    for (const auto& e : events) {
        auto& slot = out[e.key];
        if (slot == nullptr || e.ts > slot->ts) slot = &e;
    }
    return out;
}

std::string stream_key(int k) { return "user-" + std::to_string(k); }

event_stream::event_stream(kafka_cluster& kafka, std::string topic, int keys, std::uint64_t seed, std::int64_t base_ts,
                           message_variety variety)
    : kafka_(kafka), topic_(std::move(topic)), keys_(keys), rng_(seed), base_ts_(base_ts), variety_(variety) {}

void event_stream::send_random(int key_count) {
    const int n = key_count > 0 ? std::min(key_count, keys_) : keys_;
    send(static_cast<int>(rng_() % static_cast<std::uint64_t>(n)));
}

void event_stream::send_random_of(const std::vector<int>& candidates) {
    if (candidates.empty()) throw std::invalid_argument("send_random_of: no candidates");
    send(candidates[rng_() % candidates.size()]);
}

void event_stream::send(int k) { send(stream_key(k), base_ts_ + static_cast<std::int64_t>(events_.size())); }

void event_stream::send(const std::string& key, std::int64_t ts) {
    // The last one only with message_variety::non_ascii_country.
    static const char* const countries[] = {"DE", "FR", "US", "JP", "BR", "IN", "C\xC3\x94"};
    const std::size_t country_count = std::size(countries) - (variety_.non_ascii_country ? 0 : 1);
    const std::size_t n = events_.size();
    stream_event e;
    e.key = key;
    e.ts = ts;
    e.clicks = static_cast<std::int64_t>(rng_() % 10000);
    e.spend = static_cast<double>(rng_() % 400000) / 4.0;  // exact in binary
    if (n % 7 != 3) e.country = countries[rng_() % country_count];
    if (n % 11 != 5) e.premium = (rng_() & 1) != 0;
    json msg = event_message(e, n % 13 == 0);
    if (variety_.undeclared_field && n % 17 == 0) {
        msg["referrer"] = json{{"campaign", "spring"}, {"path", json::array({1, 2, 3})}};
    }
    e.id = kafka_.produce(topic_, e.key, msg.dump());
    events_.push_back(std::move(e));
}

void event_stream::flush(std::chrono::milliseconds timeout) {
    kafka_.flush(timeout);
    resolve();
    for (const auto& e : events_) {
        if (e.partition < 0 || e.offset < 0) throw std::runtime_error("event " + e.key + " has no partition/offset");
    }
}

void event_stream::resolve() {
    while (resolved_ < events_.size()) {
        auto d = kafka_.delivery_of(events_[resolved_].id);
        if (!d.done || !d.error.empty()) break;
        events_[resolved_].partition = d.partition;
        events_[resolved_].offset = d.offset;
        ++resolved_;
    }
}

std::size_t paced_due(std::size_t total, std::chrono::steady_clock::duration duration,
                      std::chrono::steady_clock::duration elapsed) {
    if (elapsed >= duration || duration.count() <= 0) return total;
    if (elapsed.count() <= 0) return 0;
    const double share = std::chrono::duration<double>(elapsed) / std::chrono::duration<double>(duration);
    return std::min(total, static_cast<std::size_t>(static_cast<double>(total) * share));
}

std::vector<int> assigned_counts(const std::string& log_text) {
    static const std::regex line(R"(assigned (\d+) partitions)");
    std::vector<int> out;
    for (auto it = std::sregex_iterator(log_text.begin(), log_text.end(), line); it != std::sregex_iterator(); ++it) {
        out.push_back(std::stoi((*it)[1].str()));
    }
    return out;
}

}  // namespace sluice::it
