// Ingest and freshness driver: hosts librdkafka's mock cluster (a Kafka-protocol broker on
// loopback), produces the benchmark's events to it, and watches the daemon consume them.
//
//   ingest:    produces --messages events over --keys keys to --partitions partitions first,
//              then writes the bootstrap address to --bootstrap-file (the script starts the
//              daemon on it) and polls the daemon's /metrics until every event is written to
//              the stores. Prints the write rate from the first written batch to the last.
//   freshness: writes the bootstrap address, waits for the daemon's /readyz, then produces
//              background events at --rate per second and, one after another, probe events whose
//              c0 field carries a sequence number; each probe's latency runs from its produce call
//              until GET /v1/features/kv/{probe key} shows that number.
//   underload: produces one event per key first, then writes the bootstrap address, then
//              produces background events at --rate per second while --control-file holds "on",
//              none while it holds "off" (or is absent), and ends when it holds "stop". After
//              each change it writes "<on|off> <messages produced so far>" to --status-file
//              (turning off, after the producer's queue is delivered), so that the script can
//              wait until the daemon has written all of them. Reads under ingest (scripts/bench.sh).
//
//   sluice_bench_kafka --mode ingest|freshness|underload --bootstrap-file F --url http://127.0.0.1:PORT
//                      [--topic bench-events] [--partitions 64] [--messages 1000000] [--keys 100000]
//                      [--rate 20000] [--seconds 10] [--timeout 300] [--control-file F --status-file F]
// Every wait is bounded: --timeout for the whole run, 5 s per probe.

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <cctype>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/events.hpp"
#include "common/http_client.hpp"

using namespace sluice::bench;
using clock_type = std::chrono::steady_clock;

namespace {

struct options {
    std::string mode, bootstrap_file, url, topic = "bench-events", control_file, status_file;
    int partitions = 64;
    std::uint64_t messages = 1000000, keys = 100000;
    double rate = 20000, seconds = 10;
    int timeout_s = 300;
};

std::atomic<std::uint64_t> delivery_errors{0};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR && delivery_errors.fetch_add(1) < 3)
        std::fprintf(stderr, "delivery failed: %s\n", rd_kafka_err2str(m->err));
}

bool set(rd_kafka_conf_t* conf, const char* name, const std::string& value) {
    char err[512];
    if (rd_kafka_conf_set(conf, name, value.c_str(), err, sizeof err) == RD_KAFKA_CONF_OK) return true;
    std::fprintf(stderr, "%s: %s\n", name, err);
    return false;
}

std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Queues one message, serving delivery reports while librdkafka's queue is full.
bool produce(rd_kafka_t* p, const std::string& topic, const std::string& key, const std::string& value) {
    for (int tries = 0; tries < 10000; ++tries) {
        auto err = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                     RD_KAFKA_V_KEY(key.data(), key.size()),
                                     RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return true;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            std::fprintf(stderr, "produce: %s\n", rd_kafka_err2str(err));
            return false;
        }
        rd_kafka_poll(p, 1);
    }
    return false;
}

rd_kafka_t* make_producer(const char* bootstraps, const char* linger_ms) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    const bool ok = set(conf, "bootstrap.servers", bootstraps) && set(conf, "linger.ms", linger_ms) &&
                    set(conf, "queue.buffering.max.messages", "1000000") && set(conf, "batch.num.messages", "10000") &&
                    set(conf, "message.timeout.ms", "120000");
    if (!ok) {
        rd_kafka_conf_destroy(conf);
        return nullptr;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    char err[512];
    rd_kafka_t* p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!p) std::fprintf(stderr, "producer: %s\n", err);
    return p;
}

// Replaces `file` whole, so a reader sees the old text or the new, never a part.
void write_file(const std::string& file, const std::string& text) {
    const std::string tmp = file + ".tmp";
    std::ofstream(tmp) << text << "\n";
    std::rename(tmp.c_str(), file.c_str());
}

void write_bootstrap(const std::string& file, const char* bootstraps) { write_file(file, bootstraps); }

// sluice_records_total{...,feature_set="kv",outcome="written"} (whatever labels come first, as
// the environment does) from the daemon's /metrics; -1 if unreachable.
long long written_records(http_connection& c) {
    auto a = c.request("GET", "/metrics", {}, "application/json", 2000);
    if (a.status != 200) return -1;
    const std::string needle = "feature_set=\"kv\",outcome=\"written\"} ";
    for (auto p = a.body.find(needle); p != std::string::npos; p = a.body.find(needle, p + 1)) {
        const auto line = a.body.rfind('\n', p);
        if (a.body.compare(line == std::string::npos ? 0 : line + 1, 21, "sluice_records_total{") == 0)
            return static_cast<long long>(std::strtod(a.body.c_str() + p + needle.size(), nullptr));
    }
    return 0;
}

int run_ingest(const options& o, rd_kafka_t* producer, const char* bootstraps, const url_parts& u) {
    const auto t0 = clock_type::now();
    const auto deadline = t0 + std::chrono::seconds(o.timeout_s);
    mix64 rnd{42};
    const std::int64_t base = wall_ms() - static_cast<std::int64_t>(o.messages);
    std::uint64_t bytes = 0;
    for (std::uint64_t i = 0; i < o.messages; ++i) {
        const std::string key = key_of(i % o.keys);
        const std::string v = kv_event(key, base + static_cast<std::int64_t>(i), rnd, static_cast<std::int64_t>(i));
        bytes += v.size();
        if (!produce(producer, o.topic, key, v)) return 1;
        if ((i & 1023) == 0) rd_kafka_poll(producer, 0);
    }
    rd_kafka_flush(producer, 120000);
    const double produce_s = std::chrono::duration<double>(clock_type::now() - t0).count();
    std::fprintf(stderr, "produced %llu messages (%.0f bytes each) in %.1f s; %llu delivery errors\n",
                 static_cast<unsigned long long>(o.messages), static_cast<double>(bytes) / static_cast<double>(o.messages),
                 produce_s, static_cast<unsigned long long>(delivery_errors.load()));
    if (delivery_errors.load() != 0) return 1;
    write_bootstrap(o.bootstrap_file, bootstraps);

    // Poll the daemon's counter every 100 ms; keep (time, written) samples.
    http_connection c(u.host, u.port);
    std::vector<std::pair<double, long long>> samples;
    auto last_progress = clock_type::now();
    long long last = -1;
    while (clock_type::now() < deadline) {
        const long long w = written_records(c);
        const double t = std::chrono::duration<double>(clock_type::now() - t0).count();
        if (w >= 0) samples.emplace_back(t, w);
        if (w > last) {
            last = w;
            last_progress = clock_type::now();
        }
        if (w >= static_cast<long long>(o.messages)) break;
        if (last > 0 && clock_type::now() - last_progress > std::chrono::seconds(30)) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    // The rate between the first sample with written records and the first with all of them,
    // and between 10 % and 90 % of them (the steady part).
    const auto at = [&samples](long long n) {
        for (const auto& s : samples)
            if (s.second >= n) return s;
        return samples.empty() ? std::pair<double, long long>{0, 0} : samples.back();
    };
    const auto first = at(1), end = at(static_cast<long long>(o.messages));
    const auto p10 = at(static_cast<long long>(o.messages / 10)), p90 = at(static_cast<long long>(o.messages * 9 / 10));
    const double rate = end.first > first.first ? static_cast<double>(end.second - first.second) / (end.first - first.first) : 0;
    const double steady = p90.first > p10.first ? static_cast<double>(p90.second - p10.second) / (p90.first - p10.first) : 0;
    std::printf("RESULT messages=%llu written=%lld seconds=%.2f rows_per_sec=%.0f steady_rows_per_sec=%.0f bytes_per_message=%.0f\n",
                static_cast<unsigned long long>(o.messages), last, end.first - first.first, rate, steady,
                static_cast<double>(bytes) / static_cast<double>(o.messages));
    return last >= static_cast<long long>(o.messages) ? 0 : 1;
}

int run_freshness(const options& o, rd_kafka_t* producer, rd_kafka_t* prober, const char* bootstraps,
                  const url_parts& u) {
    const auto deadline = clock_type::now() + std::chrono::seconds(o.timeout_s);
    write_bootstrap(o.bootstrap_file, bootstraps);
    http_connection c(u.host, u.port);
    for (;;) {
        if (c.request("GET", "/readyz", {}, "application/json", 1000).status == 200) break;
        if (clock_type::now() > deadline) {
            std::fprintf(stderr, "the daemon did not become ready\n");
            return 1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    mix64 rnd{99}, jitter{3};
    // The probe producer connected first: its first message waits for metadata and a connection,
    // which is not what a probe measures.
    if (!produce(prober, o.topic, "probe-warmup", kv_event("probe-warmup", wall_ms(), rnd, 0))) return 1;
    rd_kafka_flush(prober, 2000);
    // Background events at the given rate (1 ms ticks) from another thread.
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> produced{0};
    std::thread background([&] {
        mix64 rnd{7};
        const auto start = clock_type::now();
        std::uint64_t i = 0;
        while (!stop.load()) {
            const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
            const auto due = static_cast<std::uint64_t>(elapsed * o.rate);
            const std::int64_t now = wall_ms();
            for (; i < due; ++i) {
                const std::string key = key_of(i % o.keys);
                if (!produce(producer, o.topic, key, kv_event(key, now, rnd, static_cast<std::int64_t>(i)))) break;
            }
            produced = i;
            rd_kafka_poll(producer, 0);
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    });
    std::this_thread::sleep_for(std::chrono::seconds(2));  // warm-up: the pipeline at its rate
    std::vector<double> latencies_ms;
    std::uint64_t timeouts = 0, seq = 0;
    const auto start = clock_type::now();
    const auto end = start + std::chrono::duration<double>(o.seconds);
    while (clock_type::now() < end && clock_type::now() < deadline) {
        ++seq;
        const std::string key = "probe" + key_of(seq % 50).substr(5);
        const std::string path = "/v1/features/kv/" + key + "?fields=c0";
        const std::string needle = "\"c0\":" + std::to_string(seq);
        const auto sent = clock_type::now();
        if (!produce(prober, o.topic, key, kv_event(key, wall_ms(), rnd, static_cast<std::int64_t>(seq)))) break;
        rd_kafka_poll(prober, 0);
        bool seen = false;
        while (clock_type::now() - sent < std::chrono::seconds(5)) {
            auto a = c.request("GET", path, {}, "application/json", 1000);
            if (a.status == 200) {
                const auto p = a.body.find(needle);
                if (p != std::string::npos && !std::isdigit(static_cast<unsigned char>(a.body[p + needle.size()]))) {
                    seen = true;
                    break;
                }
            }
            std::this_thread::sleep_for(std::chrono::microseconds(500));
        }
        const double ms = std::chrono::duration<double, std::milli>(clock_type::now() - sent).count();
        if (seen) latencies_ms.push_back(ms);
        else ++timeouts;
        std::fprintf(stderr, "probe %llu at %.2f s: %s %.1f ms\n", static_cast<unsigned long long>(seq),
                     std::chrono::duration<double>(sent - start).count(), seen ? "seen after" : "not seen in", ms);
        std::this_thread::sleep_for(std::chrono::milliseconds(5 + static_cast<int>(jitter.next() % 20)));
    }
    const double secs = std::chrono::duration<double>(clock_type::now() - start).count() + 2.0;
    stop = true;
    background.join();
    rd_kafka_flush(producer, 10000);
    std::sort(latencies_ms.begin(), latencies_ms.end());
    const auto pct = [&](double p) {
        if (latencies_ms.empty()) return 0.0;
        return latencies_ms[std::min(latencies_ms.size() - 1,
                                     static_cast<std::size_t>(p / 100.0 * static_cast<double>(latencies_ms.size() - 1) + 0.5))];
    };
    std::printf("RESULT probes=%zu timeouts=%llu rate=%.0f p50_ms=%.1f p90_ms=%.1f p99_ms=%.1f max_ms=%.1f\n",
                latencies_ms.size(), static_cast<unsigned long long>(timeouts), static_cast<double>(produced.load()) / secs,
                pct(50), pct(90), pct(99), latencies_ms.empty() ? 0.0 : latencies_ms.back());
    return timeouts == 0 && !latencies_ms.empty() ? 0 : 1;
}

int run_underload(const options& o, rd_kafka_t* producer, const char* bootstraps) {
    const auto deadline = clock_type::now() + std::chrono::seconds(o.timeout_s);
    // Every key once, so that reads find all of them before the first read window.
    mix64 rnd{11};
    const std::int64_t base = wall_ms() - static_cast<std::int64_t>(o.keys);
    for (std::uint64_t i = 0; i < o.keys; ++i) {
        const std::string key = key_of(i);
        if (!produce(producer, o.topic, key, kv_event(key, base + static_cast<std::int64_t>(i), rnd, 0))) return 1;
        if ((i & 1023) == 0) rd_kafka_poll(producer, 0);
    }
    rd_kafka_flush(producer, 120000);
    if (delivery_errors.load() != 0) return 1;
    std::uint64_t produced = o.keys, i = 0;  // i: background events so far
    write_file(o.status_file, "off " + std::to_string(produced));
    write_bootstrap(o.bootstrap_file, bootstraps);

    bool on = false;
    auto on_since = clock_type::now();
    std::uint64_t i_at_on = 0, on_messages = 0;
    double on_seconds = 0;
    for (std::uint64_t tick = 0; clock_type::now() < deadline; ++tick) {
        if (tick % 20 == 0) {  // the control file, every ~20 ms
            std::string want;
            std::ifstream(o.control_file) >> want;
            if (want == "stop") break;
            if (want == "on" && !on) {
                on = true;
                on_since = clock_type::now();
                i_at_on = i;
                write_file(o.status_file, "on " + std::to_string(produced));
            } else if (want != "on" && on) {
                on = false;
                rd_kafka_flush(producer, 30000);
                const double s = std::chrono::duration<double>(clock_type::now() - on_since).count();
                on_seconds += s;
                on_messages += i - i_at_on;
                std::fprintf(stderr, "on for %.2f s: %llu messages, %.0f msg/s\n", s,
                             static_cast<unsigned long long>(i - i_at_on), static_cast<double>(i - i_at_on) / s);
                write_file(o.status_file, "off " + std::to_string(produced));
            }
        }
        if (on) {  // background events at the rate since the last "on" (1 ms ticks), as freshness
            const double elapsed = std::chrono::duration<double>(clock_type::now() - on_since).count();
            const auto due = i_at_on + static_cast<std::uint64_t>(elapsed * o.rate);
            const std::int64_t now = wall_ms();
            for (; i < due; ++i, ++produced) {
                const std::string key = key_of(i % o.keys);
                if (!produce(producer, o.topic, key, kv_event(key, now, rnd, static_cast<std::int64_t>(i)))) return 1;
            }
        }
        rd_kafka_poll(producer, 0);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    rd_kafka_flush(producer, 10000);
    std::printf("RESULT prefill=%llu produced=%llu on_seconds=%.2f on_rate=%.0f delivery_errors=%llu\n",
                static_cast<unsigned long long>(o.keys), static_cast<unsigned long long>(produced), on_seconds,
                on_seconds > 0 ? static_cast<double>(on_messages) / on_seconds : 0.0,
                static_cast<unsigned long long>(delivery_errors.load()));
    return delivery_errors.load() == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    options o;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        const char* v = argv[i + 1];
        if (a == "--mode") o.mode = v;
        else if (a == "--bootstrap-file") o.bootstrap_file = v;
        else if (a == "--url") o.url = v;
        else if (a == "--topic") o.topic = v;
        else if (a == "--partitions") o.partitions = std::atoi(v);
        else if (a == "--messages") o.messages = std::strtoull(v, nullptr, 10);
        else if (a == "--keys") o.keys = std::strtoull(v, nullptr, 10);
        else if (a == "--rate") o.rate = std::atof(v);
        else if (a == "--seconds") o.seconds = std::atof(v);
        else if (a == "--timeout") o.timeout_s = std::atoi(v);
        else if (a == "--control-file") o.control_file = v;
        else if (a == "--status-file") o.status_file = v;
        else {
            std::fprintf(stderr, "unknown argument %s\n", a.c_str());
            return 2;
        }
    }
    url_parts u;
    const bool underload = o.mode == "underload";
    if ((o.mode != "ingest" && o.mode != "freshness" && !underload) || o.bootstrap_file.empty() ||
        !parse_url(o.url, u) || o.keys == 0 || o.partitions < 1 ||
        (underload && (o.control_file.empty() || o.status_file.empty()))) {
        std::fprintf(stderr, "usage: sluice_bench_kafka --mode ingest|freshness|underload --bootstrap-file F "
                             "--url http://127.0.0.1:PORT [--control-file F --status-file F]\n");
        return 2;
    }
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    set(conf, "log_level", "3");
    char err[512];
    rd_kafka_t* host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!host) {
        std::fprintf(stderr, "rd_kafka_new: %s\n", err);
        return 1;
    }
    rd_kafka_mock_cluster_t* mock = rd_kafka_mock_cluster_new(host, 1);
    if (!mock) {
        std::fprintf(stderr, "rd_kafka_mock_cluster_new failed\n");
        return 1;
    }
    const char* bootstraps = rd_kafka_mock_cluster_bootstraps(mock);
    if (rd_kafka_mock_topic_create(mock, o.topic.c_str(), o.partitions, 1) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        std::fprintf(stderr, "topic create failed\n");
        return 1;
    }
    // The bulk producer lingers 5 ms (librdkafka's default); the probes of the freshness mode have
    // a producer of their own that sends each at once, so a probe's latency holds no linger.
    rd_kafka_t* producer = make_producer(bootstraps, "5");
    rd_kafka_t* prober = o.mode == "freshness" ? make_producer(bootstraps, "0") : nullptr;
    if (!producer || (o.mode == "freshness" && !prober)) return 1;
    const int rc = o.mode == "ingest"  ? run_ingest(o, producer, bootstraps, u)
                   : underload         ? run_underload(o, producer, bootstraps)
                                       : run_freshness(o, producer, prober, bootstraps, u);
    for (rd_kafka_t* p : {producer, prober}) {
        if (!p) continue;
        rd_kafka_flush(p, 5000);
        rd_kafka_destroy(p);
    }
    rd_kafka_mock_cluster_destroy(mock);
    rd_kafka_destroy(host);
    return rc;
}
