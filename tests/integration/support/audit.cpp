#include "integration/support/audit.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "integration/support/net.hpp"
#include "integration/support/postgres.hpp"
#include "integration/support/redis.hpp"
#include "integration/support/stack.hpp"
#include "integration/support/wait.hpp"

namespace sluice::it {

using nlohmann::json;

namespace {

constexpr const char* k_set = "user_activity";

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

// Polls `count` every `interval` until it reaches `n`, `timeout` passes or `daemon` (when given)
// has exited; the last count.
template <class Count>
long long wait_count(Count&& count, long long n, std::chrono::steady_clock::duration timeout, daemon_process* daemon,
                     std::chrono::milliseconds interval) {
    long long got = -1;
    wait_until(timeout, [&] {
        got = count();
        return got >= n || (daemon != nullptr && !daemon->running());
    }, interval);
    return got;
}

// A PostgreSQL text[] literal.
std::string text_array(const std::vector<std::string>& items) {
    std::string out = "{";
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += ",";
        out += "\"";
        for (char c : items[i]) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        out += "\"";
    }
    return out + "}";
}

}  // namespace

std::string describe(const location& l) { return std::to_string(l.partition) + "/" + std::to_string(l.offset); }

// ---- history ---------------------------------------------------------------------------------

history_check check_history(const std::string& dsn, const std::string& schema, const std::string& topic,
                            const std::vector<stream_event>& produced) {
    history_check h;
    h.expected = produced.size();
    std::map<location, const stream_event*> expected;
    for (const auto& e : produced) {
        if (!expected.emplace(location{e.partition, e.offset}, &e).second) {
            h.error = "delivery reports gave duplicate offsets";
            note(h.examples, "two produced events at " + describe({e.partition, e.offset}));
        }
    }
    const std::string history = schema + ".user_activity_history";
    pg_rows rows;
    try {
        const auto totals = pg_query(dsn,
                                     "SELECT count(*), count(DISTINCT (src_topic, src_partition, src_offset)) FROM " +
                                         history + " WHERE src_topic = $1",
                                     {topic});
        h.rows = std::stoll(totals.at(0).at(0));
        h.distinct_src = std::stoll(totals.at(0).at(1));
        rows = pg_query(dsn,
                        "SELECT src_partition, src_offset, key, "
                        "(extract(epoch FROM event_time) * 1000)::bigint, clicks FROM " +
                            history + " WHERE src_topic = $1",
                        {topic});
    } catch (const std::exception& ex) {
        h.error = ex.what();
        return h;
    }
    std::map<location, int> seen;
    for (const auto& r : rows) {
        const location l{std::stoi(r[0]), std::stoll(r[1])};
        ++seen[l];
        auto it = expected.find(l);
        if (it == expected.end()) {
            ++h.unexpected;
            note(h.examples, "row at " + describe(l) + " was never produced (key " + r[2] + ")");
            continue;
        }
        const stream_event& e = *it->second;
        if (r[2] != e.key || r[3] != std::to_string(e.ts) || r[4] != std::to_string(e.clicks)) {
            ++h.wrong;
            note(h.examples, "row at " + describe(l) + " is (" + r[2] + ", " + r[3] + ", " + r[4] + "), produced (" +
                                 e.key + ", " + std::to_string(e.ts) + ", " + std::to_string(e.clicks) + ")");
        }
    }
    for (const auto& [l, n] : seen) {
        h.stored_at.insert(h.stored_at.end(), l);
        if (n > 1) {
            h.duplicates += static_cast<std::size_t>(n - 1);
            note(h.examples, "row at " + describe(l) + " stored " + std::to_string(n) + " times");
        }
    }
    for (const auto& [l, e] : expected) {
        if (seen.count(l) == 0) {
            ++h.missing;
            note(h.examples, "missing: " + describe(l) + " (" + e->key + ", " + std::to_string(e->ts) + ")");
        }
    }
    return h;
}

void print_history_check(const std::string& tag, const history_check& h) {
    std::printf("[%s] produced=%zu stored=%lld missing=%zu duplicates=%zu unexpected=%zu wrong=%zu%s%s\n", tag.c_str(),
                h.expected, h.rows, h.missing, h.duplicates, h.unexpected, h.wrong, h.error.empty() ? "" : " error=",
                h.error.c_str());
    if (h.broker_copies > 0) {
        std::printf("[%s]   %zu of the produced are copies the broker wrote twice (a produce retried across the "
                    "fault); each is a message of the topic and stored as one\n",
                    tag.c_str(), h.broker_copies);
    }
    for (const auto& s : h.examples) std::printf("[%s]   %s\n", tag.c_str(), s.c_str());
    std::fflush(stdout);
}

void expect_each_event_once(const history_check& h) {
    EXPECT_EQ(h.error, "");
    EXPECT_EQ(h.missing, 0u);
    EXPECT_EQ(h.duplicates, 0u);
    EXPECT_EQ(h.rows, h.distinct_src) << "count(*) != count(DISTINCT src triple)";
    EXPECT_EQ(h.rows, static_cast<long long>(h.expected));
    EXPECT_TRUE(h.same_set()) << "the stored (partition, offset) set is not the produced one";
    EXPECT_EQ(h.unexpected + h.wrong, 0u);
    report_mismatches("history", h.examples);
}

long long history_rows(const std::string& dsn, const std::string& schema, const std::string& topic) {
    return pg_count(dsn, "SELECT count(*) FROM " + schema + ".user_activity_history WHERE src_topic = $1", {topic});
}

long long wait_history(const std::string& dsn, const std::string& schema, const std::string& topic, long long n,
                       std::chrono::steady_clock::duration timeout, daemon_process* daemon,
                       std::chrono::milliseconds interval) {
    return wait_count([&] { return history_rows(dsn, schema, topic); }, n, timeout, daemon, interval);
}

// ---- latest, Redis, API ----------------------------------------------------------------------

std::vector<std::string> latest_mismatches(const std::string& dsn, const std::string& schema, const newest_map& newest,
                                           latest_scope scope) {
    std::vector<std::string> bad;
    const std::string select = "SELECT key, (extract(epoch FROM event_time) * 1000)::bigint, clicks, spend, country, "
                               "premium FROM " + schema + ".user_activity_latest";
    pg_rows rows;
    try {
        if (scope == latest_scope::whole_table) {
            rows = pg_query(dsn, select);
        } else {
            std::vector<std::string> keys;
            for (const auto& [key, e] : newest) keys.push_back(key);
            rows = pg_query(dsn, select + " WHERE key = ANY($1::text[])", {text_array(keys)});
        }
    } catch (const std::exception& e) {
        return {e.what()};
    }
    if (scope == latest_scope::whole_table && rows.size() != newest.size()) {
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

std::vector<std::string> wait_latest(const std::string& dsn, const std::string& schema, const newest_map& newest,
                                     latest_scope scope, std::chrono::steady_clock::duration timeout,
                                     std::chrono::milliseconds interval) {
    std::vector<std::string> bad;
    wait_until(timeout, [&] { return (bad = latest_mismatches(dsn, schema, newest, scope)).empty(); }, interval);
    return bad;
}

std::vector<std::string> redis_mismatches(int redis_port, const std::string& key_prefix, const newest_map& newest,
                                          std::optional<std::chrono::seconds> ttl_at_most) {
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
            if (ttl_at_most) {
                const long long ttl = redis.ttl(hkey);
                const long long most = ttl_at_most->count();
                if (ttl <= 0 || ttl > most) {
                    bad.push_back(hkey + ": TTL " + std::to_string(ttl) + " not in (0, " + std::to_string(most) + "]");
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
    expect_eq("feature_set", k_set);
    expect_eq("key", e.key);
    expect_eq("status", "PRESENT");
    expect_eq("event_time", rfc3339_ms(e.ts));
    expect_eq("values", e.values());
    return bad;
}

api_check check_api(int http_port, const newest_map& newest) {
    api_check c;
    for (const auto& [key, e] : newest) {
        auto more = api_mismatches(http_port, *e);
        auto& [n, wrong] = c.per_partition[e->partition];
        ++n;
        if (!more.empty()) ++wrong;
        c.bad.insert(c.bad.end(), more.begin(), more.end());
    }
    return c;
}

void expect_latest_and_redis(const std::string& tag, const std::string& dsn, const std::string& schema, int redis_port,
                             const std::string& key_prefix, const newest_map& newest) {
    using namespace std::chrono_literals;
    auto bad = wait_latest(dsn, schema, newest, latest_scope::whole_table, 15s);
    std::printf("[%s] latest: %zu keys, %zu mismatches\n", tag.c_str(), newest.size(), bad.size());
    report_mismatches(schema + ".user_activity_latest", bad);
    wait_until(15s, [&] { return (bad = redis_mismatches(redis_port, key_prefix, newest)).empty(); }, 500ms);
    std::printf("[%s] redis: %zu keys, %zu mismatches\n", tag.c_str(), newest.size(), bad.size());
    report_mismatches("Redis hashes", bad);
}

void report_mismatches(const std::string& what, const std::vector<std::string>& bad, std::size_t limit) {
    if (bad.empty()) return;
    std::string text = what + ": " + std::to_string(bad.size()) + " mismatches, first ones:";
    for (std::size_t i = 0; i < bad.size() && i < limit; ++i) text += "\n  " + bad[i];
    ADD_FAILURE() << text;
}

// ---- offsets, dead letters -------------------------------------------------------------------

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

void expect_offsets_at_end(kafka_cluster& kafka, const std::string& dsn, const std::string& schema,
                           const std::string& group, const std::string& topic, int partitions, const std::string& note) {
    const auto ends = kafka.end_offsets(topic, partitions);
    EXPECT_EQ(kafka.committed_offsets(group, topic, partitions), ends) << "Kafka committed offsets" << note;
    EXPECT_EQ(pg_consumer_offsets(dsn, schema, group, topic), ends) << schema << ".consumer_offsets" << note;
}

long long dead_letter_rows(const std::string& dsn, const std::string& schema, const std::string& topic) {
    return pg_count(dsn, "SELECT count(*) FROM " + schema + ".dead_letters WHERE src_topic = $1", {topic});
}

long long wait_dead_letters(const std::string& dsn, const std::string& schema, const std::string& topic, long long n,
                            std::chrono::steady_clock::duration timeout, daemon_process* daemon) {
    return wait_count([&] { return dead_letter_rows(dsn, schema, topic); }, n, timeout, daemon,
                      std::chrono::milliseconds(250));
}

std::string hex(const std::string& bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
    return out;
}

}  // namespace sluice::it
