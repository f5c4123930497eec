#include "integration/support/faults.hpp"

#include <librdkafka/rdkafka.h>

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
#include "integration/support/wait.hpp"

namespace sluice::it {

using nlohmann::json;

std::string event_json(const sent_event& e) {
    return json{{"user_id", e.key}, {"ts", e.ts}, {"clicks", e.clicks}, {"spend", e.spend}}.dump();
}

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
    sent_event e;
    e.key = key_prefix_ + std::to_string(static_cast<int>(n % static_cast<std::size_t>(limit)));
    e.ts = base_ts_ + static_cast<std::int64_t>(n);
    e.clicks = static_cast<std::int64_t>(n) + 1;
    e.spend = static_cast<double>(n % 4000) / 4.0;  // exact in binary
    e.id = kafka_.produce(topic_, e.key, event_json(e));
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
    for (auto& e : events_) {
        auto d = kafka_.delivery_of(e.id);
        e.partition = d.partition;
        e.offset = d.offset;
    }
}

std::map<std::string, sent_event> paced_producer::newest() const {
    std::lock_guard lock(mu_);
    std::map<std::string, sent_event> out;
    for (const auto& e : events_) {
        auto [it, inserted] = out.try_emplace(e.key, e);
        if (!inserted && e.ts > it->second.ts) it->second = e;
    }
    return out;
}

std::vector<std::string> paced_producer::keys_so_far() const {
    std::lock_guard lock(mu_);
    std::set<std::string> keys;
    for (const auto& e : events_) keys.insert(e.key);
    return {keys.begin(), keys.end()};
}

// ---- audits ----------------------------------------------------------------------------------

history_audit audit_history(const std::string& dsn, const std::string& topic, const std::vector<sent_event>& events) {
    history_audit a;
    a.expected = events.size();
    std::map<std::pair<std::int32_t, std::int64_t>, const sent_event*> expected;
    for (const auto& e : events) expected[{e.partition, e.offset}] = &e;
    if (expected.size() != events.size()) {
        a.error = "delivery reports gave duplicate offsets";
        return a;
    }
    pg_rows rows;
    try {
        rows = pg_query(dsn,
                        "SELECT src_partition, src_offset, key, (extract(epoch FROM event_time) * 1000)::bigint, clicks "
                        "FROM sluice.user_activity_history WHERE src_topic = $1",
                        {topic});
    } catch (const std::exception& ex) {
        a.error = ex.what();
        return a;
    }
    a.stored = rows.size();
    std::map<std::pair<std::int32_t, std::int64_t>, int> seen;
    for (const auto& r : rows) {
        const std::pair<std::int32_t, std::int64_t> at{std::stoi(r[0]), std::stoll(r[1])};
        ++seen[at];
        auto it = expected.find(at);
        const std::string where = std::to_string(at.first) + "/" + std::to_string(at.second);
        if (it == expected.end()) {
            ++a.unexpected;
            if (a.samples.size() < 10) a.samples.push_back("row at " + where + " (key " + r[2] + ") was never produced");
            continue;
        }
        const sent_event& e = *it->second;
        if (r[2] != e.key || r[3] != std::to_string(e.ts) || r[4] != std::to_string(e.clicks)) {
            ++a.wrong;
            if (a.samples.size() < 10) {
                a.samples.push_back("row at " + where + " is (" + r[2] + ", " + r[3] + ", " + r[4] + "), produced (" +
                                    e.key + ", " + std::to_string(e.ts) + ", " + std::to_string(e.clicks) + ")");
            }
        }
    }
    for (const auto& [at, e] : expected) {
        if (seen.count(at) == 0) {
            ++a.missing;
            if (a.samples.size() < 10) {
                a.samples.push_back("missing " + std::to_string(at.first) + "/" + std::to_string(at.second) + " (" +
                                    e->key + " ts " + std::to_string(e->ts) + ")");
            }
        }
    }
    for (const auto& [at, n] : seen) a.duplicates += static_cast<std::size_t>(n - 1);
    return a;
}

void print_audit(const char* tag, const history_audit& a) {
    std::printf("[%s] produced=%zu stored=%zu missing=%zu duplicates=%zu unexpected=%zu wrong=%zu%s%s\n", tag,
                a.expected, a.stored, a.missing, a.duplicates, a.unexpected, a.wrong, a.error.empty() ? "" : " error=",
                a.error.c_str());
    for (const auto& s : a.samples) std::printf("[%s]   %s\n", tag, s.c_str());
    std::fflush(stdout);
}

long long topic_history_rows(const std::string& dsn, const std::string& topic) {
    return pg_count(dsn, "SELECT count(*) FROM sluice.user_activity_history WHERE src_topic = $1", {topic});
}

long long wait_history(const std::string& dsn, const std::string& topic, long long n, std::chrono::seconds timeout) {
    long long got = -1;
    wait_until(timeout, [&] { return (got = topic_history_rows(dsn, topic)) >= n; }, std::chrono::milliseconds(250));
    return got;
}

namespace {

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

std::vector<std::string> pg_latest_mismatches(const std::string& dsn, const std::map<std::string, sent_event>& newest) {
    std::vector<std::string> keys;
    for (const auto& [k, e] : newest) keys.push_back(k);
    pg_rows rows;
    try {
        rows = pg_query(dsn,
                        "SELECT key, (extract(epoch FROM event_time) * 1000)::bigint, clicks "
                        "FROM sluice.user_activity_latest WHERE key = ANY($1::text[])",
                        {text_array(keys)});
    } catch (const std::exception& ex) {
        return {ex.what()};
    }
    std::vector<std::string> bad;
    std::set<std::string> seen;
    for (const auto& r : rows) {
        seen.insert(r[0]);
        const sent_event& e = newest.at(r[0]);
        if (r[1] != std::to_string(e.ts) || r[2] != std::to_string(e.clicks)) {
            bad.push_back(r[0] + ": latest (ts " + r[1] + ", clicks " + r[2] + "), newest produced (ts " +
                          std::to_string(e.ts) + ", clicks " + std::to_string(e.clicks) + ")");
        }
    }
    for (const auto& k : keys) {
        if (seen.count(k) == 0) bad.push_back(k + ": not in user_activity_latest");
    }
    return bad;
}

std::map<std::string, std::int64_t> pg_latest_times(const std::string& dsn, const std::string& key_prefix) {
    std::map<std::string, std::int64_t> out;
    for (const auto& r : pg_query(dsn,
                                  "SELECT key, (extract(epoch FROM event_time) * 1000)::bigint "
                                  "FROM sluice.user_activity_latest WHERE starts_with(key, $1)",
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
            const std::string hkey = "sluice:user_activity:" + key;
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
    std::transform(out.reasons.begin(), out.reasons.end(), out.reasons.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
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

int env_number(const char* name, int fallback) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return fallback;
    char* end = nullptr;
    long n = std::strtol(v, &end, 10);
    if (end == v || *end != '\0') return fallback;
    return static_cast<int>(n);
}

}  // namespace sluice::it
