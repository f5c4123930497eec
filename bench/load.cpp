// Fills the daemon's stores through its push route (POST /v1/ingest/{set}, NDJSON): one event
// per key, keys 000000000000 .. N-1, in batches over a few keep-alive connections. Prints what
// it loaded, how fast, and the raw bytes of the values (key + the fields' JSON text) for the
// memory benchmark.
//
//   sluice_bench_load --url http://127.0.0.1:PORT --set kv|wide --keys N [--batch 2000]
//                     [--connections 2] [--timeout 300]

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/events.hpp"
#include "common/http_client.hpp"

using namespace sluice::bench;

int main(int argc, char** argv) {
    std::string url, set = "kv";
    std::uint64_t keys = 100000, batch = 2000;
    int connections = 2, timeout_s = 300;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--url") url = argv[i + 1];
        else if (a == "--set") set = argv[i + 1];
        else if (a == "--keys") keys = std::strtoull(argv[i + 1], nullptr, 10);
        else if (a == "--batch") batch = std::strtoull(argv[i + 1], nullptr, 10);
        else if (a == "--connections") connections = std::atoi(argv[i + 1]);
        else if (a == "--timeout") timeout_s = std::atoi(argv[i + 1]);
        else {
            std::fprintf(stderr, "unknown argument %s\n", a.c_str());
            return 2;
        }
    }
    url_parts u;
    if (!parse_url(url, u) || batch == 0 || connections < 1) {
        std::fprintf(stderr, "usage: sluice_bench_load --url http://127.0.0.1:PORT --set kv|wide --keys N\n");
        return 2;
    }
    const std::string path = "/v1/ingest/" + set;
    const std::uint64_t batches = (keys + batch - 1) / batch;
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + std::chrono::seconds(timeout_s);
    const std::int64_t ts = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch()).count();
    std::atomic<std::uint64_t> next{0}, accepted{0}, raw_bytes{0};
    std::atomic<bool> failed{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < connections; ++t) {
        threads.emplace_back([&, t] {
            http_connection c(u.host, u.port);
            mix64 rnd{0x5eedULL + static_cast<std::uint64_t>(t)};
            std::string body;
            for (;;) {
                const std::uint64_t b = next.fetch_add(1);
                if (b >= batches || failed.load() || std::chrono::steady_clock::now() > deadline) return;
                body.clear();
                std::uint64_t bytes = 0;
                for (std::uint64_t k = b * batch; k < std::min(keys, (b + 1) * batch); ++k) {
                    const std::string key = key_of(k);
                    const std::string e = set == "wide" ? wide_event(key, ts, rnd) : kv_event(key, ts, rnd, static_cast<std::int64_t>(k));
                    // Raw bytes: the key and the fields' JSON text, without the event time.
                    bytes += key.size() + (e.size() - e.find(",\"", e.find("\"ts\"")) - 2);
                    body.append(e).push_back('\n');
                }
                auto a = c.request("POST", path, body, "application/x-ndjson", 60000);
                if (a.status != 200) {
                    std::fprintf(stderr, "batch %llu: status %d %s %.300s\n", static_cast<unsigned long long>(b), a.status,
                                 a.error.c_str(), a.body.c_str());
                    failed = true;
                    return;
                }
                const auto p = a.body.find("\"accepted\":");
                accepted += p == std::string::npos ? 0 : std::strtoull(a.body.c_str() + p + 11, nullptr, 10);
                raw_bytes += bytes;
            }
        });
    }
    for (auto& t : threads) t.join();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("RESULT loaded=%llu keys=%llu seconds=%.2f records_per_sec=%.0f raw_value_bytes=%llu\n",
                static_cast<unsigned long long>(accepted.load()), static_cast<unsigned long long>(keys), secs,
                static_cast<double>(accepted.load()) / secs, static_cast<unsigned long long>(raw_bytes.load()));
    return failed || accepted.load() != keys ? 1 : 0;
}
