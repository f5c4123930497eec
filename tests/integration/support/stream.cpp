#include "integration/support/stream.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <regex>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include "integration/support/net.hpp"
#include "integration/support/postgres.hpp"
#include "integration/support/redis.hpp"
#include "integration/support/stack.hpp"

namespace sluice::it {

using nlohmann::json;

namespace {

constexpr const char* k_set = "user_activity";

struct location {
    std::int32_t partition = -1;
    std::int64_t offset = -1;
    bool operator==(const location&) const = default;
};

struct location_hash {
    std::size_t operator()(const location& l) const noexcept {
        return std::hash<std::int64_t>{}(l.offset * 1031 + l.partition);
    }
};

std::string describe(const location& l) { return std::to_string(l.partition) + "/" + std::to_string(l.offset); }

bool same_number(const std::string& text, double expected) {
    if (text == pg_null) return false;
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    return end != text.c_str() && *end == '\0' && v == expected;
}

std::string pg_bool_text(const std::optional<bool>& b) {
    if (!b) return pg_null;
    return *b ? "t" : "f";
}

void note(std::vector<std::string>& examples, std::string text) {
    if (examples.size() < 10) examples.push_back(std::move(text));
}

}  // namespace

json stream_event::values() const {
    json v;
    v["clicks"] = clicks;
    v["spend"] = spend;
    v["country"] = country;
    v["premium"] = premium ? json(*premium) : json(nullptr);
    return v;
}

std::string stream_key(int k) { return "user-" + std::to_string(k); }

event_stream::event_stream(kafka_cluster& kafka, std::string topic, int keys, std::uint64_t seed, std::int64_t base_ts)
    : kafka_(kafka), topic_(std::move(topic)), keys_(keys), rng_(seed), base_ts_(base_ts) {}

void event_stream::send_random(int key_count) {
    const int n = key_count > 0 ? std::min(key_count, keys_) : keys_;
    send(static_cast<int>(rng_() % static_cast<std::uint64_t>(n)));
}

void event_stream::send_random_of(const std::vector<int>& candidates) {
    if (candidates.empty()) throw std::invalid_argument("send_random_of: no candidates");
    send(candidates[rng_() % candidates.size()]);
}

void event_stream::send(int k) {
    static const char* const countries[] = {"DE", "FR", "US", "JP", "BR", "IN"};
    const std::size_t n = events_.size();
    stream_event e;
    e.key = stream_key(k);
    e.ts = base_ts_ + static_cast<std::int64_t>(n);
    e.clicks = static_cast<std::int64_t>(rng_() % 10000);
    e.spend = static_cast<double>(rng_() % 400000) / 4.0;  // exact in binary
    json msg{{"user_id", e.key}};
    msg["ts"] = n % 13 == 0 ? json(rfc3339_ms(e.ts)) : json(e.ts);
    msg["clicks"] = e.clicks;
    msg["spend"] = e.spend;
    if (n % 7 == 3) {
        e.country = "??";
    } else {
        e.country = countries[rng_() % std::size(countries)];
        msg["country"] = e.country;
    }
    if (n % 11 != 5) {
        e.premium = (rng_() & 1) != 0;
        msg["premium"] = *e.premium;
    }
    e.id = kafka_.produce(topic_, e.key, msg.dump());
    events_.push_back(std::move(e));
    key_of_.push_back(k);
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

std::map<std::string, const stream_event*> event_stream::newest() const {
    std::map<std::string, const stream_event*> out;
    for (const auto& e : events_) {
        auto& slot = out[e.key];
        if (slot == nullptr || e.ts > slot->ts) slot = &e;
    }
    return out;
}

std::map<int, std::int32_t> event_stream::key_partitions() const {
    std::map<int, std::int32_t> out;
    for (std::size_t i = 0; i < events_.size(); ++i) {
        if (events_[i].partition >= 0) out[key_of_[i]] = events_[i].partition;
    }
    return out;
}

std::size_t paced_due(std::size_t total, std::chrono::steady_clock::duration duration,
                      std::chrono::steady_clock::duration elapsed) {
    if (elapsed >= duration || duration.count() <= 0) return total;
    if (elapsed.count() <= 0) return 0;
    const double share = std::chrono::duration<double>(elapsed) / std::chrono::duration<double>(duration);
    return std::min(total, static_cast<std::size_t>(static_cast<double>(total) * share));
}

long long env_int(const char* name, long long fallback) {
    const char* text = std::getenv(name);
    if (text == nullptr || *text == '\0') return fallback;
    char* end = nullptr;
    const long long v = std::strtoll(text, &end, 10);
    if (end == text || *end != '\0' || v <= 0) return fallback;
    return v;
}

history_figures check_history(const std::string& dsn, const std::string& schema, const std::string& topic,
                              const std::vector<stream_event>& produced) {
    history_figures f;
    std::unordered_map<location, const stream_event*, location_hash> expected;
    expected.reserve(produced.size());
    for (const auto& e : produced) {
        if (!expected.emplace(location{e.partition, e.offset}, &e).second) {
            note(f.examples, "two produced events at " + describe({e.partition, e.offset}));
        }
    }
    const std::string history = schema + ".user_activity_history";
    const auto totals = pg_query(dsn,
                                 "SELECT count(*), count(DISTINCT (src_topic, src_partition, src_offset)) FROM " +
                                     history + " WHERE src_topic = $1",
                                 {topic});
    f.rows = std::stoll(totals.at(0).at(0));
    f.distinct_src = std::stoll(totals.at(0).at(1));
    const auto rows = pg_query(dsn,
                               "SELECT src_partition, src_offset, key, "
                               "(extract(epoch FROM event_time) * 1000)::bigint, clicks FROM " +
                                   history + " WHERE src_topic = $1",
                               {topic});
    std::unordered_map<location, int, location_hash> seen;
    seen.reserve(rows.size());
    for (const auto& r : rows) {
        const location l{std::stoi(r[0]), std::stoll(r[1])};
        ++seen[l];
        auto it = expected.find(l);
        if (it == expected.end()) {
            ++f.unexpected;
            note(f.examples, "row at " + describe(l) + " was never produced (key " + r[2] + ")");
            continue;
        }
        const stream_event& e = *it->second;
        if (r[2] != e.key || r[3] != std::to_string(e.ts) || r[4] != std::to_string(e.clicks)) {
            ++f.wrong;
            note(f.examples, "row at " + describe(l) + " is (" + r[2] + ", " + r[3] + ", " + r[4] + "), produced (" +
                                 e.key + ", " + std::to_string(e.ts) + ", " + std::to_string(e.clicks) + ")");
        }
    }
    for (const auto& [l, n] : seen) {
        if (n > 1) {
            f.duplicates += static_cast<std::size_t>(n - 1);
            note(f.examples, "row at " + describe(l) + " stored " + std::to_string(n) + " times");
        }
    }
    for (const auto& [l, e] : expected) {
        if (seen.count(l) == 0) {
            ++f.missing;
            note(f.examples, "missing: " + describe(l) + " (" + e->key + ", " + std::to_string(e->ts) + ")");
        }
    }
    return f;
}

long long history_rows(const std::string& dsn, const std::string& schema, const std::string& topic) {
    return pg_count(dsn, "SELECT count(*) FROM " + schema + ".user_activity_history WHERE src_topic = $1", {topic});
}

std::vector<std::string> latest_mismatches(const std::string& dsn, const std::string& schema,
                                           const std::map<std::string, const stream_event*>& newest) {
    std::vector<std::string> bad;
    pg_rows rows;
    try {
        rows = pg_query(dsn, "SELECT key, (extract(epoch FROM event_time) * 1000)::bigint, clicks, spend, country, "
                             "premium FROM " + schema + ".user_activity_latest");
    } catch (const std::exception& e) {
        return {e.what()};
    }
    if (rows.size() != newest.size()) {
        bad.push_back("latest has " + std::to_string(rows.size()) + " rows, expected " + std::to_string(newest.size()));
    }
    std::set<std::string> seen;
    for (const auto& r : rows) {
        const std::string& key = r[0];
        seen.insert(key);
        auto it = newest.find(key);
        if (it == newest.end()) {
            bad.push_back("unexpected key in latest: " + key);
            continue;
        }
        const stream_event& e = *it->second;
        if (r[1] != std::to_string(e.ts)) bad.push_back(key + ": event_time " + r[1] + " != " + std::to_string(e.ts));
        if (r[2] != std::to_string(e.clicks)) bad.push_back(key + ": clicks " + r[2] + " != " + std::to_string(e.clicks));
        if (!same_number(r[3], e.spend)) bad.push_back(key + ": spend " + r[3] + " != " + json(e.spend).dump());
        if (r[4] != e.country) bad.push_back(key + ": country " + r[4] + " != " + e.country);
        if (r[5] != pg_bool_text(e.premium)) bad.push_back(key + ": premium " + r[5] + " != " + pg_bool_text(e.premium));
    }
    for (const auto& [key, e] : newest) {
        if (seen.count(key) == 0) bad.push_back("missing from latest: " + key);
    }
    return bad;
}

std::vector<std::string> redis_mismatches(int redis_port, const std::string& key_prefix,
                                          const std::map<std::string, const stream_event*>& newest) {
    std::vector<std::string> bad;
    try {
        redis_client redis(redis_port);
        for (const auto& [key, e] : newest) {
            const std::string hkey = key_prefix + ":" + k_set + ":" + key;
            auto h = redis.hgetall(hkey);
            if (h.empty()) {
                bad.push_back("no hash " + hkey);
                continue;
            }
            if (h["_event_time"] != std::to_string(e->ts)) {
                bad.push_back(hkey + ": _event_time " + h["_event_time"] + " != " + std::to_string(e->ts));
            }
            const json values = e->values();
            for (const auto& [field, expected] : values.items()) {
                auto f = h.find(field);
                if (f == h.end()) {
                    if (!expected.is_null()) bad.push_back(hkey + ": no field " + field);
                    continue;
                }
                json got = json::parse(f->second, nullptr, false);
                if (got.is_discarded() || got != expected) {
                    bad.push_back(hkey + ": " + field + " = " + f->second + ", expected JSON " + expected.dump());
                }
            }
        }
    } catch (const std::exception& ex) {
        bad.push_back(ex.what());
    }
    return bad;
}

std::vector<std::string> api_mismatches(int http_port, const stream_event& e) {
    std::vector<std::string> bad;
    const std::string target = std::string("/v1/features/") + k_set + "/" + url_encode(e.key);
    auto res = http_get(http_port, target);
    if (res.status != 200) {
        return {"GET " + target + " -> " + std::to_string(res.status) + " " + res.error + " " + res.body};
    }
    json body = json::parse(res.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) return {"GET " + target + ": not a JSON object: " + res.body};
    auto expect_eq = [&](const char* field, const json& expected) {
        if (!body.contains(field) || body[field] != expected) {
            bad.push_back("GET :" + std::to_string(http_port) + target + ": " + field + " = " +
                          (body.contains(field) ? body[field].dump() : "<absent>") + ", expected " + expected.dump());
        }
    };
    expect_eq("key", e.key);
    expect_eq("status", "PRESENT");
    expect_eq("event_time", rfc3339_ms(e.ts));
    expect_eq("values", e.values());
    return bad;
}

void report_mismatches(const std::string& what, const std::vector<std::string>& bad, std::size_t limit) {
    if (bad.empty()) return;
    std::string text = what + ": " + std::to_string(bad.size()) + " mismatches, first ones:";
    for (std::size_t i = 0; i < bad.size() && i < limit; ++i) text += "\n  " + bad[i];
    ADD_FAILURE() << text;
}

partition_offsets pg_consumer_offsets(const std::string& dsn, const std::string& schema, const std::string& group,
                                      const std::string& topic) {
    partition_offsets out;
    for (const auto& r : pg_query(dsn,
                                  "SELECT partition, next_offset FROM " + schema +
                                      ".consumer_offsets WHERE group_id = $1 AND topic = $2",
                                  {group, topic})) {
        out[std::stoi(r[0])] = std::stoll(r[1]);
    }
    return out;
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
