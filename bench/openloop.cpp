// An open-loop HTTP load generator: requests are scheduled at a fixed rate (request i at
// start + i/rate) whatever the answers do, and each latency is measured from its scheduled send
// time, so a stall counts for every request it delays (no coordinated omission). Requests are
// spread round-robin over keep-alive connections, one thread each; a connection that falls
// behind sends its next request at once and that request's latency includes the wait.
// With --keys N, every "{key}" in the path and the body becomes a random key below N (12 digits,
// as bench/common/events.hpp makes them); each connection prepares 256 such requests from a fixed
// seed and sends them in turn, so two runs with the same arguments ask for the same keys.
//
//   sluice_bench_openloop --url http://127.0.0.1:PORT/path [--body-file F] [--rate 1000]
//                         [--seconds 10] [--warmup 1] [--connections 8] [--keys N]
// Prints: RESULT rate=... sent=... ok=... errors=... p50_us=... p90_us=... p99_us=... p999_us=... max_us=...

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/events.hpp"
#include "common/http_client.hpp"

using namespace sluice::bench;
using clock_type = std::chrono::steady_clock;

namespace {

// Every "{key}" of `text` replaced by a random key below `keys`.
std::string with_keys(const std::string& text, std::uint64_t keys, mix64& rnd) {
    static constexpr std::string_view marker = "{key}";
    std::string out;
    std::size_t from = 0;
    for (auto at = text.find(marker); at != std::string::npos; at = text.find(marker, from)) {
        out.append(text, from, at - from).append(key_of(rnd.next() % keys));
        from = at + marker.size();
    }
    return out.append(text, from);
}

}  // namespace

int main(int argc, char** argv) {
    std::string url, body_file;
    double rate = 1000, seconds = 10, warmup = 1;
    int connections = 8;
    std::uint64_t keys = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--url") url = argv[i + 1];
        else if (a == "--body-file") body_file = argv[i + 1];
        else if (a == "--rate") rate = std::atof(argv[i + 1]);
        else if (a == "--seconds") seconds = std::atof(argv[i + 1]);
        else if (a == "--warmup") warmup = std::atof(argv[i + 1]);
        else if (a == "--connections") connections = std::atoi(argv[i + 1]);
        else if (a == "--keys") keys = std::strtoull(argv[i + 1], nullptr, 10);
        else {
            std::fprintf(stderr, "unknown argument %s\n", a.c_str());
            return 2;
        }
    }
    url_parts u;
    if (!parse_url(url, u) || rate <= 0 || seconds <= 0 || connections < 1) {
        std::fprintf(stderr, "usage: sluice_bench_openloop --url http://127.0.0.1:PORT/path [--body-file F] [--rate R] [--keys N]\n");
        return 2;
    }
    std::string body;
    if (!body_file.empty()) {
        std::ifstream in(body_file);
        std::stringstream ss;
        ss << in.rdbuf();
        body = ss.str();
    }
    const std::string method = body.empty() ? "GET" : "POST";
    const auto total = static_cast<std::uint64_t>((warmup + seconds) * rate);
    const auto measured_from = static_cast<std::uint64_t>(warmup * rate);
    const auto interval = std::chrono::duration<double>(1.0 / rate);
    const auto start = clock_type::now() + std::chrono::milliseconds(50);
    // Nothing runs past the schedule's end by more than this.
    const auto hard_end = start + std::chrono::duration<double>(warmup + seconds + 10);

    std::atomic<std::uint64_t> ok{0}, errors{0};
    std::vector<std::vector<std::int64_t>> latencies(static_cast<std::size_t>(connections));
    std::vector<std::thread> threads;
    for (int t = 0; t < connections; ++t) {
        threads.emplace_back([&, t] {
            http_connection c(u.host, u.port);
            // The requests this connection sends in turn: one, or 256 with random keys.
            std::vector<std::pair<std::string, std::string>> prepared;
            mix64 rnd{1000 + static_cast<std::uint64_t>(t)};
            for (int k = 0; k < (keys > 0 ? 256 : 1); ++k)
                prepared.emplace_back(keys > 0 ? with_keys(u.path, keys, rnd) : u.path,
                                      keys > 0 ? with_keys(body, keys, rnd) : body);
            std::size_t next = 0;
            auto& mine = latencies[static_cast<std::size_t>(t)];
            mine.reserve(total / static_cast<std::uint64_t>(connections) + 1);
            for (std::uint64_t i = static_cast<std::uint64_t>(t); i < total; i += static_cast<std::uint64_t>(connections)) {
                const auto scheduled =
                    start + std::chrono::duration_cast<clock_type::duration>(interval * static_cast<double>(i));
                if (clock_type::now() > hard_end) return;
                std::this_thread::sleep_until(scheduled);
                const auto& [path, payload] = prepared[next];
                next = (next + 1) % prepared.size();
                auto a = c.request(method, path, payload, "application/json", 5000);
                const auto done = clock_type::now();
                if (i < measured_from) continue;
                if (a.status == 200) {
                    ++ok;
                    mine.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(done - scheduled).count());
                } else {
                    if (errors.fetch_add(1) < 3)
                        std::fprintf(stderr, "status %d %s %.200s\n", a.status, a.error.c_str(), a.body.c_str());
                }
            }
        });
    }
    for (auto& t : threads) t.join();
    std::vector<std::int64_t> all;
    for (auto& v : latencies) all.insert(all.end(), v.begin(), v.end());
    std::sort(all.begin(), all.end());
    const auto pct = [&all](double p) -> double {
        if (all.empty()) return 0;
        const auto idx = static_cast<std::size_t>(p / 100.0 * static_cast<double>(all.size() - 1) + 0.5);
        return static_cast<double>(all[std::min(idx, all.size() - 1)]) / 1000.0;
    };
    std::printf("RESULT rate=%.0f sent=%llu ok=%llu errors=%llu p50_us=%.0f p90_us=%.0f p99_us=%.0f p999_us=%.0f max_us=%.0f\n",
                rate, static_cast<unsigned long long>(total - measured_from), static_cast<unsigned long long>(ok.load()),
                static_cast<unsigned long long>(errors.load()), pct(50), pct(90), pct(99), pct(99.9),
                all.empty() ? 0.0 : static_cast<double>(all.back()) / 1000.0);
    return ok.load() > 0 && errors.load() == 0 ? 0 : 1;
}
