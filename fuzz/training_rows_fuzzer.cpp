// Training-set entity rows (src/query/training/entity_rows.cpp): arbitrary bytes as an NDJSON or CSV
// body (the first byte picks: 'c' CSV, anything else NDJSON; the second sets how many bytes each read
// brings, so lines and quoted cells cross reads), read to the end or to the first error, and every
// row read joined (with a history that has a row for some keys) and written in both output formats.
// Invariants: no crash or sanitizer finding; every NDJSON output line is a JSON object with the
// entity and timestamp columns; as many output lines as rows read; a CSV output has as many
// records as rows read plus its header (its cells re-read by the CSV reader's own rules).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "sluice/config/loader.hpp"
#include "sluice/query/training_set.hpp"

namespace {

using namespace sluice;

const config& fuzz_config() {
    static const config cfg = [] {
        auto loaded = load_config_text(R"({"kafka": {"brokers": "embedded"}, "feature_sets": [
          {"name": "users", "topic": "u", "key": "user_id", "event_time": "ts", "ttl": "1h",
           "fields": {"clicks": {"type": "int"}, "note": {"type": "string"}, "doc": {"type": "json"}},
           "aggregations": [{"name": "clicks_sum_1h", "field": "clicks", "op": "sum", "window": "1h"}]}]})");
        if (!loaded.ok()) std::abort();
        return loaded.cfg;
    }();
    return cfg;
}

// Keys of even length have one history row a minute before the moment.
struct some_history final : history_join {
    result<std::vector<join_answer>> join(std::uint32_t, const std::vector<join_probe>& probes, bool,
                                          std::int64_t) override {
        std::vector<join_answer> out(probes.size());
        for (std::size_t i = 0; i < probes.size(); ++i) {
            if (probes[i].key.size() % 2 != 0) continue;
            latest_entry e;
            e.key = std::string(probes[i].key);
            e.event_time_ms = probes[i].at_ms - 60000;
            e.values = {std::int64_t{3}, std::string(probes[i].key), std::string("{\"k\":[1,2]}")};
            out[i].events.emplace_back(e.event_time_ms, e.values);
            out[i].newest = std::move(e);
        }
        return out;
    }
};

byte_source bytes_of(const std::string& text, std::size_t piece) {
    auto pos = std::make_shared<std::size_t>(0);
    return [&text, pos, piece](char* buf, std::size_t cap) -> result<std::size_t> {
        const std::size_t n = std::min({cap, piece, text.size() - *pos});
        std::memcpy(buf, text.data() + *pos, n);
        *pos += n;
        return n;
    };
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const bool csv = data[0] == 'c';
    const std::size_t piece = 1 + data[1] % 64;
    const std::string text(reinterpret_cast<const char*>(data) + 2, size - 2);
    const config& cfg = fuzz_config();
    for (const table_format output : {table_format::ndjson, table_format::csv}) {
        training_request req;
        req.features = {"users:clicks", "users:note", "users:doc", "users:clicks_sum_1h"};
        req.statuses = true;
        req.output = output;
        auto plan = plan_training_set(cfg, req, [](std::string_view n) { return n == "users" ? 0 : -1; });
        if (!plan) std::abort();
        auto reader = csv ? csv_entity_reader(bytes_of(text, piece), plan->columns, 4096)
                          : ndjson_entity_reader(bytes_of(text, piece), plan->columns, 4096);
        std::string out;
        training_sink sink;
        sink.write = [&](std::string_view b) {
            out.append(b);
            return true;
        };
        training_options options;
        options.chunk_rows = 3;
        some_history history;
        auto done = run_training_set(cfg, *plan, *reader, history, sink, options);
        if (!done) continue;  // an input error, told; the rows before it were written
        const std::uint64_t rows = done->rows;
        if (output == table_format::ndjson) {
            std::uint64_t lines = 0;
            std::size_t pos = 0;
            while (pos < out.size()) {
                const auto nl = out.find('\n', pos);
                if (nl == std::string::npos) std::abort();  // every line ends
                const auto j = nlohmann::json::parse(out.substr(pos, nl - pos), nullptr, false);
                if (j.is_discarded() || !j.is_object() || !j.contains("user_id") || !j.contains("event_timestamp")) {
                    if (std::getenv("SLUICE_FUZZ_VERBOSE")) std::fprintf(stderr, "bad line: %s\n", out.substr(pos, nl - pos).c_str());
                    std::abort();
                }
                ++lines;
                pos = nl + 1;
            }
            if (lines != rows) std::abort();
        } else {
            // Re-read by the CSV reader: the header and every record come back whole.
            auto again = csv_entity_reader(bytes_of(out, 4096), plan->columns, 1 << 20);
            entity_row row;
            std::uint64_t back = 0;
            while (true) {
                auto more = again->next(row);
                if (!more) std::abort();
                if (!more.value()) break;
                ++back;
            }
            if (back != rows) std::abort();
        }
    }
    return 0;
}
