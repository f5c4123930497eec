#include "integration/support/faults.hpp"

#include <librdkafka/rdkafka.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <regex>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "integration/support/net.hpp"
#include "integration/support/postgres.hpp"
#include "integration/support/redis.hpp"
#include "integration/support/stack.hpp"
#include "integration/support/wait.hpp"

namespace sluice::it {

using nlohmann::json;

// ---- paced_producer --------------------------------------------------------------------------

paced_producer::paced_producer(kafka_cluster& kafka, std::string topic, std::string key_prefix, int keys,
                               double rate_per_s, std::int64_t base_ts)
    : kafka_(kafka),
      topic_(std::move(topic)),
      key_prefix_(std::move(key_prefix)),
      keys_(keys),
      rate_(rate_per_s),
      base_ts_(base_ts),
      key_limit_(keys) {}

paced_producer::~paced_producer() { stop(); }

void paced_producer::start() {
    if (running_.exchange(true)) return;
    thread_ = std::thread([this] { run(); });
}

void paced_producer::stop() {
    running_.store(false);
    if (thread_.joinable()) thread_.join();
}

void paced_producer::send_one() {
    const std::size_t n = sent_.load();
    const int limit = std::max(1, std::min(keys_, key_limit_.load()));
    stream_event e;
    e.key = key_prefix_ + std::to_string(static_cast<int>(n % static_cast<std::size_t>(limit)));
    e.ts = base_ts_ + static_cast<std::int64_t>(n);
    e.clicks = static_cast<std::int64_t>(n) + 1;
    e.spend = static_cast<double>(n % 4000) / 4.0;  // exact in binary
    e.id = kafka_.produce(topic_, e.key, event_message(e).dump());
    {
        std::lock_guard lock(mu_);
        events_.push_back(std::move(e));
    }
    sent_.store(n + 1);
}

void paced_producer::run() {
    const auto t0 = std::chrono::steady_clock::now();
    const std::size_t at_start = sent_.load();
    try {
        while (running_.load()) {
            const double elapsed = seconds_since(t0);
            const auto due = at_start + static_cast<std::size_t>(elapsed * rate_);
            while (sent_.load() < due && running_.load()) send_one();
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    } catch (const std::exception& ex) {
        std::lock_guard lock(mu_);
        error_ = ex.what();
    }
}

void paced_producer::send_now(int n) {
    for (int i = 0; i < n; ++i) send_one();
}

std::string paced_producer::error() const {
    std::lock_guard lock(mu_);
    return error_;
}

void paced_producer::flush(std::chrono::milliseconds timeout) {
    stop();
    kafka_.flush(timeout);
    std::lock_guard lock(mu_);
    record_deliveries(kafka_, events_);
}

newest_map paced_producer::newest() const {
    std::lock_guard lock(mu_);
    return newest_events(events_);
}

std::vector<std::string> paced_producer::keys_so_far() const {
    std::lock_guard lock(mu_);
    std::set<std::string> keys;
    for (const auto& e : events_) keys.insert(e.key);
    return {keys.begin(), keys.end()};
}

void warm_up(paced_producer& producer, const std::string& dsn, const std::string& topic, std::chrono::seconds how_long,
             const std::string& before_what, long long& sent, long long at_least) {
    producer.start();
    std::this_thread::sleep_for(how_long);
    sent = static_cast<long long>(producer.sent());
    ASSERT_GE(sent, at_least) << "warm-up too short to write every key";
    ASSERT_GE(wait_history(dsn, default_schema, topic, sent, std::chrono::seconds(30)), sent)
        << "the daemon did not keep up before " << before_what;
}

std::vector<stream_event> held_events(kafka_cluster& kafka, const std::string& topic,
                                      const std::vector<stream_event>& produced, std::size_t& copies) {
    std::map<location, const stream_event*> at;
    std::map<std::string, const stream_event*> by_message;
    for (const auto& e : produced) {
        at.emplace(location{e.partition, e.offset}, &e);
        by_message.emplace(event_message(e).dump(), &e);
    }
    std::vector<stream_event> held;
    std::vector<std::string> bad;
    std::set<location> found;
    copies = 0;
    // Everything up to the end offsets as they are now (nothing is produced any more).
    const int partitions = kafka.partitions_of(topic);
    std::size_t total = 0;
    for (const auto& [p, end] : kafka.end_offsets(topic, partitions)) total += static_cast<std::size_t>(end);
    for (const auto& r : consume_topic(kafka.bootstraps(), topic, partitions, total, std::chrono::seconds(30))) {
        const location l{r.partition, r.offset};
        auto sent = r.value ? by_message.find(*r.value) : by_message.end();
        if (sent == by_message.end() || r.key != sent->second->key) {
            bad.push_back("the topic holds a message at " + describe(l) + " that was never produced: " +
                          r.key.value_or("(null)") + " " + r.value.value_or("(null)"));
            continue;
        }
        auto reported = at.find(l);
        if (reported != at.end() && reported->second != sent->second) {
            bad.push_back("the topic holds " + *r.value + " at " + describe(l) + ", reported for " +
                          event_message(*reported->second).dump());
            continue;
        }
        held.push_back(*sent->second);
        held.back().partition = l.partition;
        held.back().offset = l.offset;
        if (reported == at.end()) ++copies;
        found.insert(l);
    }
    for (const auto& [l, e] : at) {
        if (found.count(l) == 0)
            bad.push_back("the topic lacks " + event_message(*e).dump() + ", reported at " + describe(l));
    }
    report_mismatches("the broker against the delivery reports", bad);
    return held;
}

void finish_stream(paced_producer& producer, const std::string& dsn, const std::string& topic, history_check& out) {
    producer.stop();
    ASSERT_EQ(producer.error(), "");
    ASSERT_NO_THROW(producer.flush()) << "a delivery report failed";
    std::vector<stream_event> held;
    std::size_t copies = 0;
    ASSERT_NO_THROW(held = held_events(producer.kafka(), topic, producer.events(), copies));
    wait_history(dsn, default_schema, topic, static_cast<long long>(held.size()), std::chrono::seconds(60));
    std::this_thread::sleep_for(std::chrono::seconds(1));  // anything beyond the expected rows would show up now
    out = check_history(dsn, default_schema, topic, held);
    out.broker_copies = copies;
}

std::vector<std::string> settled_latest(const std::string& dsn, const paced_producer& producer) {
    return wait_latest(dsn, default_schema, producer.newest(), latest_scope::produced_keys, std::chrono::seconds(20));
}

// ---- Redis against PostgreSQL ----------------------------------------------------------------

std::map<std::string, std::int64_t> pg_latest_times(const std::string& dsn, const std::string& key_prefix) {
    std::map<std::string, std::int64_t> out;
    for (const auto& r : pg_query(dsn,
                                  "SELECT key, (extract(epoch FROM event_time) * 1000)::bigint FROM " +
                                      std::string(default_schema) + ".user_activity_latest WHERE starts_with(key, $1)",
                                  {key_prefix})) {
        out[r[0]] = std::stoll(r[1]);
    }
    return out;
}

std::vector<std::string> redis_time_mismatches(int redis_port, const std::map<std::string, std::int64_t>& expected) {
    std::vector<std::string> bad;
    try {
        redis_client redis(redis_port);
        for (const auto& [key, ts] : expected) {
            const std::string hkey = std::string(default_key_prefix) + ":user_activity:" + key;
            auto h = redis.hgetall(hkey);
            auto it = h.find("_event_time");
            if (it == h.end()) {
                bad.push_back(hkey + ": missing (PostgreSQL latest " + std::to_string(ts) + ")");
            } else if (it->second != std::to_string(ts)) {
                bad.push_back(hkey + ": _event_time " + it->second + " != PostgreSQL latest " + std::to_string(ts));
            }
        }
    } catch (const std::exception& ex) {
        bad.push_back(ex.what());
    }
    return bad;
}

std::int64_t parse_rfc3339_ms(const std::string& text) {
    int y, mo, d, h, mi, s, ms;
    char z = 0;
    if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &y, &mo, &d, &h, &mi, &s, &ms, &z) != 8 || z != 'Z') {
        return -1;
    }
    std::tm tm{};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    return static_cast<std::int64_t>(::timegm(&tm)) * 1000 + ms;
}

feature_read read_feature(int http_port, const std::string& key) {
    feature_read out;
    auto res = http_get(http_port, "/v1/features/user_activity/" + url_encode(key), std::chrono::seconds(5));
    out.status = res.status;
    out.body = res.status == 0 ? res.error : res.body;
    if (res.status != 200) return out;
    json body = json::parse(res.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) return out;
    if (body.contains("event_time") && body["event_time"].is_string()) {
        out.event_time_ms = parse_rfc3339_ms(body["event_time"].get<std::string>());
    }
    if (body.contains("values") && body["values"].is_object() && body["values"].contains("clicks") &&
        body["values"]["clicks"].is_number_integer()) {
        out.clicks = body["values"]["clicks"].get<std::int64_t>();
    }
    return out;
}

readiness probe_readyz(int http_port) {
    readiness out;
    auto res = http_get(http_port, "/readyz", std::chrono::seconds(5));
    out.status = res.status;
    out.body = res.status == 0 ? res.error : res.body;
    json body = json::parse(res.body, nullptr, false);
    if (!body.is_discarded() && body.is_object() && body.contains("reasons") && body["reasons"].is_array()) {
        for (const auto& r : body["reasons"]) {
            if (!out.reasons.empty()) out.reasons += "; ";
            out.reasons += r.is_string() ? r.get<std::string>() : r.dump();
        }
    }
    out.reasons = lower(std::move(out.reasons));
    return out;
}

long long rss_kib(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6);
    }
    return -1;
}

std::vector<std::string> grep_lines(const std::filesystem::path& file, const std::vector<std::string>& needles) {
    std::vector<std::string> out;
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
        for (const auto& n : needles) {
            if (line.find(n) != std::string::npos) {
                out.push_back(line);
                break;
            }
        }
    }
    return out;
}

std::vector<std::string> rebalance_lines(const std::filesystem::path& daemon_log) {
    static const std::regex pattern(R"(\b(assigned|revoked) [0-9]+ partitions)");
    std::vector<std::string> out;
    for (auto& line : grep_lines(daemon_log, {"assigned ", "revoked "})) {
        if (std::regex_search(line, pattern)) out.push_back(std::move(line));
    }
    return out;
}

bool wait_assignment_settled(const std::filesystem::path& daemon_log, std::size_t from_line, int partitions,
                             std::chrono::milliseconds quiet, std::chrono::milliseconds timeout) {
    static const std::regex pattern(R"(\b(assigned|revoked) ([0-9]+) partitions)");
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::size_t seen = 0;
    auto changed_at = std::chrono::steady_clock::now();
    for (;;) {
        const auto lines = rebalance_lines(daemon_log);
        const auto now = std::chrono::steady_clock::now();
        if (lines.size() != seen) {
            seen = lines.size();
            changed_at = now;
        }
        int owned = 0;
        for (std::size_t i = from_line; i < lines.size(); ++i) {
            std::smatch m;
            if (!std::regex_search(lines[i], m, pattern)) continue;
            owned += (m[1] == "assigned" ? 1 : -1) * std::stoi(m[2].str());
        }
        if (owned == partitions && now - changed_at >= quiet) return true;
        if (now >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

// ---- reading a topic back --------------------------------------------------------------------

std::vector<consumed_message> consume_topic(const std::string& bootstraps, const std::string& topic, int partitions,
                                            std::size_t expected, std::chrono::milliseconds timeout,
                                            std::chrono::milliseconds settle) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    auto set = [&](const char* name, const std::string& value) {
        if (rd_kafka_conf_set(conf, name, value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            throw std::runtime_error(std::string("rd_kafka_conf_set ") + name + ": " + err);
        }
    };
    set("bootstrap.servers", bootstraps);
    set("group.id", "it-reader-" + std::to_string(::time(nullptr)));
    set("enable.auto.commit", "false");
    set("enable.partition.eof", "false");
    set("log_level", "3");
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (rk == nullptr) {
        rd_kafka_conf_destroy(conf);
        throw std::runtime_error(std::string("rd_kafka_new: ") + err);
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p) {
        rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    auto aerr = rd_kafka_assign(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (aerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_destroy(rk);
        throw std::runtime_error(std::string("assign ") + topic + ": " + rd_kafka_err2str(aerr));
    }
    std::vector<consumed_message> out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    bool settling = false;
    while (std::chrono::steady_clock::now() < deadline) {
        if (!settling && out.size() >= expected) {
            settling = true;
            deadline = std::min(deadline, std::chrono::steady_clock::now() + settle);
            continue;
        }
        rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 200);
        if (m == nullptr) continue;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            consumed_message c;
            c.partition = m->partition;
            c.offset = m->offset;
            if (m->key != nullptr) c.key.emplace(static_cast<const char*>(m->key), m->key_len);
            if (m->payload != nullptr) c.value.emplace(static_cast<const char*>(m->payload), m->len);
            rd_kafka_headers_t* hdrs = nullptr;
            if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR && hdrs != nullptr) {
                for (std::size_t i = 0;; ++i) {
                    const char* name = nullptr;
                    const void* value = nullptr;
                    std::size_t size = 0;
                    if (rd_kafka_header_get_all(hdrs, i, &name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR) break;
                    c.headers.emplace_back(name, value != nullptr ? std::string(static_cast<const char*>(value), size)
                                                                  : std::string());
                }
            }
            out.push_back(std::move(c));
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return out;
}

}  // namespace sluice::it
