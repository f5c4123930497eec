// The training-set engine without PostgreSQL: entity rows read from NDJSON and CSV (and their
// errors), the plan against a config, and run_training_set over a history_join double that answers
// from an in-memory history by the same rule the SQL states (newest event time <= the moment, the
// first delivered among equals; with known_at, only rows ingested by then).

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/config/loader.hpp"
#include "sluice/query/training_set.hpp"

namespace sluice {
namespace {

using nlohmann::json;

byte_source text_source(std::string text, std::size_t piece = 7) {
    auto data = std::make_shared<std::string>(std::move(text));
    auto pos = std::make_shared<std::size_t>(0);
    // Small pieces: lines and quoted cells cross the reads.
    return [data, pos, piece](char* buf, std::size_t cap) -> result<std::size_t> {
        const std::size_t n = std::min({cap, piece, data->size() - *pos});
        std::memcpy(buf, data->data() + *pos, n);
        *pos += n;
        return n;
    };
}

entity_columns user_columns() { return {{"user_id"}, "event_timestamp"}; }

std::vector<entity_row> read_all(entity_reader& r, std::string* error = nullptr) {
    std::vector<entity_row> out;
    while (true) {
        entity_row row;
        auto more = r.next(row);
        if (!more) {
            if (error) *error = more.message();
            return out;
        }
        if (!more.value()) return out;
        out.push_back(std::move(row));
    }
}

TEST(EntityRows, ndjson_rows_keep_keys_times_and_pass_through_columns) {
    auto r = ndjson_entity_reader(text_source("{\"user_id\":\"u1\",\"event_timestamp\":\"2025-11-01T10:00:00Z\",\"label\":1}\n"
                                              "\n"
                                              "{\"event_timestamp\":1761991200000,\"user_id\":42,\"label\":{\"a\":[1]}}\r\n"
                                              "{\"user_id\":\"u3\",\"event_timestamp\":\"1761991200\"}"),
                                  user_columns());
    std::string error;
    const auto rows = read_all(*r, &error);
    ASSERT_EQ(error, "");
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_EQ(r->extra_columns(), std::vector<std::string>{"label"});
    EXPECT_EQ(rows[0].keys[0], "u1");
    EXPECT_EQ(rows[0].entities[0], "\"u1\"");
    EXPECT_EQ(rows[0].at_ms, 1761991200000);
    EXPECT_EQ(rows[0].extra[0], "1");
    EXPECT_EQ(rows[1].keys[0], "42");
    EXPECT_EQ(rows[1].entities[0], "42");
    EXPECT_EQ(rows[1].extra[0], "{\"a\":[1]}");
    EXPECT_EQ(rows[2].at_ms, 1761991200000) << "epoch seconds as text, under the daemon's timestamp rule";
    EXPECT_EQ(rows[2].extra[0], "null") << "a pass-through column a later row leaves out is null";
}

TEST(EntityRows, ndjson_errors_name_the_row_and_the_column) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"{\"user_id\":\"a\",\"event_timestamp\":1761991200000}\nnot json\n", "entity row 2: not valid JSON"},
        {"[1,2]\n", "entity row 1: not a JSON object"},
        {"{\"event_timestamp\":1761991200000}\n", "entity row 1: the entity column \"user_id\" is missing"},
        {"{\"user_id\":1.5,\"event_timestamp\":1761991200000}\n", "is not a string or an integer"},
        {"{\"user_id\":\"a\"}\n", "the timestamp column \"event_timestamp\" is missing"},
        {"{\"user_id\":\"a\",\"event_timestamp\":\"yesterday\"}\n", "entity row 1: the timestamp column"},
        {"{\"user_id\":\"a\",\"event_timestamp\":1761991200000}\n{\"user_id\":\"b\",\"event_timestamp\":1761991200000,\"x\":1}\n",
         "entity row 2: the column \"x\" is not in the first row"},
        {std::string("{\"user_id\":\"a\",\"event_timestamp\":1761991200000}\0garbage\n", 56), "entity row 1: holds a NUL byte"},
    };
    for (const auto& [input, expected] : cases) {
        auto r = ndjson_entity_reader(text_source(input), user_columns());
        std::string error;
        read_all(*r, &error);
        EXPECT_NE(error.find(expected), std::string::npos) << "input: " << input << "\nerror: " << error;
    }
    auto r = ndjson_entity_reader(text_source(std::string(100, 'x') + "\n"), user_columns(), 64);
    std::string error;
    read_all(*r, &error);
    EXPECT_NE(error.find("longer than 64 bytes"), std::string::npos) << error;
}

TEST(EntityRows, csv_follows_rfc4180_and_types_cells_like_a_dataframe_reader) {
    auto r = csv_entity_reader(text_source("\xEF\xBB\xBFlabel,user_id,event_timestamp,note\r\n"
                                           "1,u1,2026-11-01T10:00:00Z,\"a, \"\"quoted\"\"\nline\"\n"
                                           "\n"
                                           "0.5,\"007\",1761991200000,\n"),
                               user_columns());
    std::string error;
    const auto rows = read_all(*r, &error);
    ASSERT_EQ(error, "");
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(r->extra_columns(), (std::vector<std::string>{"label", "note"}));
    EXPECT_EQ(rows[0].keys[0], "u1");
    EXPECT_EQ(rows[0].extra[0], "1");
    EXPECT_EQ(json::parse(rows[0].extra[1]), json("a, \"quoted\"\nline"));
    EXPECT_EQ(rows[1].keys[0], "007");
    EXPECT_EQ(rows[1].entities[0], "\"007\"") << "a quoted cell stays a string";
    EXPECT_EQ(rows[1].extra[0], "0.5");
    EXPECT_EQ(rows[1].extra[1], "null") << "an empty cell is null";

    // A NUL byte ends the JSON library's input: "0\0x" must not read as the number 0.
    auto nul = csv_entity_reader(text_source(std::string("user_id,event_timestamp,n\nu,1761991200000,0\0x\n", 46)),
                                 user_columns());
    const auto nul_rows = read_all(*nul, &error);
    ASSERT_EQ(nul_rows.size(), 1u) << error;
    EXPECT_EQ(nul_rows[0].extra[0], "\"0\\u0000x\"");
}

TEST(EntityRows, csv_errors_are_clear) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"user_id,ts\nu,1\n", "the CSV header has no timestamp column \"event_timestamp\""},
        {"id,event_timestamp\nu,1\n", "the CSV header has no entity column \"user_id\""},
        {"user_id,event_timestamp,user_id\n", "names the column \"user_id\" twice"},
        {"user_id,event_timestamp\nu,1761991200000,3\n", "entity row 1: has 3 cells; the header has 2"},
        {"user_id,event_timestamp\n\"u,1761991200000\n", "entity row 1: a quoted cell is not closed"},
        {"user_id,event_timestamp\n\"u\"x,1761991200000\n", "text after a closing quote"},
        {"user_id,event_timestamp\nu\"x,1761991200000\n", "a quote inside an unquoted cell"},
        {"user_id,event_timestamp\n,1761991200000\n", "the entity column \"user_id\" is empty"},
        {"user_id,event_timestamp\nu,soon\n", "entity row 1: the timestamp column \"event_timestamp\": \"soon\""},
    };
    for (const auto& [input, expected] : cases) {
        auto r = csv_entity_reader(text_source(input), user_columns());
        std::string error;
        read_all(*r, &error);
        EXPECT_NE(error.find(expected), std::string::npos) << "input: " << input << "\nerror: " << error;
    }
    auto empty = csv_entity_reader(text_source(""), user_columns());
    std::string error;
    EXPECT_TRUE(read_all(*empty, &error).empty());
    EXPECT_EQ(error, "");
}

// ---- plan and run --------------------------------------------------------------------------

config two_sets() {
    auto loaded = load_config_text(R"({
      "kafka": {"brokers": "embedded"},
      "feature_sets": [
        {"name": "users", "topic": "u", "key": "user_id", "event_time": "ts", "ttl": "1h",
         "fields": {"clicks": {"type": "int"}, "country": {"type": "string"}, "seen": {"type": "timestamp"}},
         "aggregations": [{"name": "clicks_sum_1h", "field": "clicks", "op": "sum", "window": "1h"}]},
        {"name": "items", "topic": "i", "key": "item_id", "event_time": "ts", "ttl": "0s",
         "fields": {"price": {"type": "double"}, "clicks": {"type": "int"}}}
      ]})");
    EXPECT_TRUE(loaded.ok()) << format_errors(loaded.errors);
    return loaded.cfg;
}

int resolve_in(const config& cfg, std::string_view name) {
    for (std::size_t i = 0; i < cfg.feature_sets.size(); ++i)
        if (cfg.feature_sets[i].name == name) return static_cast<int>(i);
    return -1;
}

TEST(TrainingPlan, resolves_features_entities_and_names) {
    const config cfg = two_sets();
    training_request req;
    req.features = {"users:clicks", "items:price", "users:clicks_sum_1h"};
    auto plan = plan_training_set(cfg, req, [&](std::string_view n) { return resolve_in(cfg, n); });
    ASSERT_TRUE(plan) << plan.message();
    EXPECT_EQ(plan->columns.entities, (std::vector<std::string>{"user_id", "item_id"}));
    ASSERT_EQ(plan->parts.size(), 2u);
    EXPECT_TRUE(plan->parts[0].aggregations);
    EXPECT_FALSE(plan->parts[1].aggregations);
    EXPECT_EQ(plan->features[2].output_name, "clicks_sum_1h");
    EXPECT_EQ(plan->features[2].column, 3u) << "aggregations come after the set's three fields";

    req.features = {"users:clicks", "items:clicks"};
    auto clash = plan_training_set(cfg, req, [&](std::string_view n) { return resolve_in(cfg, n); });
    ASSERT_FALSE(clash);
    EXPECT_NE(clash.message().find("two columns would be named \"clicks\"; ask with \"full_feature_names\": true"),
              std::string::npos);
    req.full_feature_names = true;
    auto full = plan_training_set(cfg, req, [&](std::string_view n) { return resolve_in(cfg, n); });
    ASSERT_TRUE(full) << full.message();
    EXPECT_EQ(full->features[1].output_name, "items__clicks");

    for (const auto& [feature, expected] : std::vector<std::pair<std::string, std::string>>{
             {"users", "is not \"set:feature\""},
             {"nope:clicks", "no feature set \"nope\""},
             {"users:nope", "has no field or aggregation \"nope\""}}) {
        req.features = {feature};
        auto bad = plan_training_set(cfg, req, [&](std::string_view n) { return resolve_in(cfg, n); });
        ASSERT_FALSE(bad);
        EXPECT_NE(bad.message().find(expected), std::string::npos) << bad.message();
    }
}

TEST(TrainingPlan, the_json_request_refuses_unknown_keys_and_bad_types) {
    EXPECT_FALSE(training_request_from_json(json::parse(R"({"features": []})"), table_format::ndjson));
    EXPECT_FALSE(training_request_from_json(json::parse(R"({"features": ["a:b"], "as_known_at": "yes"})"), table_format::ndjson));
    auto unknown = training_request_from_json(json::parse(R"({"features": ["a:b"], "featurs": 1})"), table_format::ndjson);
    ASSERT_FALSE(unknown);
    EXPECT_EQ(unknown.message(), "unknown key \"featurs\"");
    auto ok = training_request_from_json(
        json::parse(R"({"features": ["a:b"], "format": "csv", "as_known_at": true, "entity_rows": []})"), table_format::ndjson);
    ASSERT_TRUE(ok) << ok.message();
    EXPECT_EQ(ok->output, table_format::csv);
    EXPECT_TRUE(ok->as_known_at);
}

// A history in memory, answered by the rule the SQL states.
struct fake_history final : history_join {
    struct row {
        std::string key;
        std::int64_t event_ms, ingested_ms;
        std::vector<value> values;
    };
    std::map<std::uint32_t, std::vector<row>> sets;  // in delivery order
    std::size_t calls = 0;

    result<std::vector<join_answer>> join(std::uint32_t set_index, const std::vector<join_probe>& probes, bool known_at,
                                          std::int64_t span_ms) override {
        ++calls;
        std::vector<join_answer> out(probes.size());
        for (std::size_t i = 0; i < probes.size(); ++i) {
            const row* best = nullptr;
            for (const auto& r : sets[set_index]) {
                if (r.key != probes[i].key || r.event_ms > probes[i].at_ms) continue;
                if (known_at && r.ingested_ms > probes[i].at_ms) continue;
                if (best == nullptr || r.event_ms > best->event_ms) best = &r;
                if (span_ms > 0 && r.event_ms > probes[i].at_ms - span_ms) out[i].events.emplace_back(r.event_ms, r.values);
            }
            if (best) out[i].newest = latest_entry{best->key, best->event_ms, best->ingested_ms, best->values, -1};
            std::sort(out[i].events.begin(), out[i].events.end(),
                      [](const auto& a, const auto& b) { return a.first < b.first; });
        }
        return out;
    }
};

constexpr std::int64_t T0 = 1761991200000;  // 2025-11-01T10:00:00Z
constexpr std::int64_t MIN = 60000;

std::string run(const config& cfg, training_request req, const std::string& rows, fake_history& h,
                std::size_t chunk = 2, training_progress* progress = nullptr) {
    auto plan = plan_training_set(cfg, req, [&](std::string_view n) { return resolve_in(cfg, n); });
    EXPECT_TRUE(plan) << plan.message();
    auto reader = ndjson_entity_reader(text_source(rows), plan->columns);
    std::string out;
    training_sink sink;
    sink.write = [&](std::string_view b) {
        out.append(b);
        return true;
    };
    training_options options;
    options.chunk_rows = chunk;
    auto done = run_training_set(cfg, *plan, *reader, h, sink, options);
    EXPECT_TRUE(done) << done.message();
    if (done && progress) *progress = done.value();
    return out;
}

std::vector<nlohmann::ordered_json> lines(const std::string& text) {
    std::vector<nlohmann::ordered_json> out;
    std::size_t pos = 0;
    while (pos < text.size()) {
        const auto nl = text.find('\n', pos);
        out.push_back(nlohmann::ordered_json::parse(text.substr(pos, nl - pos)));
        pos = nl + 1;
    }
    return out;
}

TEST(TrainingRun, point_in_time_values_statuses_ttl_aggregations_and_input_order) {
    const config cfg = two_sets();
    fake_history h;
    h.sets[0] = {{"u1", T0, T0 + 1000, {std::int64_t{1}, std::string("DE"), T0}},
                 {"u1", T0 + 10 * MIN, T0 + 10 * MIN, {std::int64_t{5}, std::string("FR"), std::monostate{}}},
                 {"u2", T0 - 3 * 60 * MIN, T0, {std::int64_t{7}, std::string("US"), std::monostate{}}}};
    h.sets[1] = {{"i1", T0, T0, {2.5, std::int64_t{3}}}};
    training_request req;
    req.features = {"users:clicks", "users:clicks_sum_1h", "items:price", "users:seen"};
    req.statuses = true;
    auto at = [](std::int64_t t) { return std::to_string(t); };
    const std::string rows =
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"event_timestamp\":" + at(T0 + 5 * MIN) + ",\"y\":1}\n" +
        "{\"user_id\":\"u1\",\"item_id\":\"i2\",\"event_timestamp\":" + at(T0 + 20 * MIN) + ",\"y\":0}\n" +
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"event_timestamp\":" + at(T0 - 1) + ",\"y\":1}\n" +
        "{\"user_id\":\"u2\",\"item_id\":\"i1\",\"event_timestamp\":" + at(T0) + ",\"y\":0}\n" +
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"event_timestamp\":" + at(T0 + 69 * MIN + 30000) + "}\n";
    training_progress p;
    const auto out = lines(run(cfg, req, rows, h, 2, &p));
    ASSERT_EQ(out.size(), 5u);
    // Row 1: the first u1 event only (the second is after the moment).
    EXPECT_EQ(out[0]["clicks"], 1);
    EXPECT_EQ(out[0]["clicks_sum_1h"], 1);
    EXPECT_EQ(out[0]["price"], 2.5);
    EXPECT_EQ(out[0]["seen"], "2025-11-01T10:00:00.000Z");
    EXPECT_EQ(out[0]["y"], 1) << "pass-through columns come before the features";
    EXPECT_EQ(out[0].begin().key(), "user_id") << "entity columns first";
    // Row 2: both u1 events; no item i2.
    EXPECT_EQ(out[1]["clicks"], 5);
    EXPECT_EQ(out[1]["clicks_sum_1h"], 6);
    EXPECT_TRUE(out[1]["price"].is_null());
    EXPECT_EQ(out[1]["price__status"], "NOT_FOUND");
    // Row 3: a millisecond before the first event: nothing yet.
    EXPECT_EQ(out[2]["clicks__status"], "NOT_FOUND");
    EXPECT_TRUE(out[2]["clicks_sum_1h"].is_null());
    // Row 4: u2's only event is 3 h old, older than the set's 1 h TTL.
    EXPECT_EQ(out[3]["clicks__status"], "EXPIRED");
    EXPECT_TRUE(out[3]["clicks"].is_null());
    EXPECT_EQ(out[3]["price"], 2.5) << "items has no TTL";
    // Row 5: 59.5 min after the second event: within the TTL; the 1 h window (60 tiles of a minute,
    // the oldest dropped whole) has let the first go.
    EXPECT_EQ(out[4]["clicks"], 5);
    EXPECT_EQ(out[4]["clicks_sum_1h"], 5);
    EXPECT_EQ(out[4]["event_timestamp"], "2025-11-01T11:09:30.000Z");
    EXPECT_EQ(p.rows, 5u);
    EXPECT_EQ(p.not_found, 1u + 4u);  // row 2's price; row 3's four features
    EXPECT_EQ(p.expired, 3u);         // row 4's three users features
    EXPECT_EQ(h.calls, 6u) << "3 chunks of 2 rows x 2 sets";

    // Known-at: the first u1 event arrived a second after its event time.
    req.as_known_at = true;
    const auto known = lines(run(cfg, req, "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"event_timestamp\":" + at(T0 + 500) + "}\n",
                                 h));
    EXPECT_EQ(known[0]["clicks__status"], "NOT_FOUND");
    req.as_known_at = false;
    const auto plain = lines(run(cfg, req, "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"event_timestamp\":" + at(T0 + 500) + "}\n",
                                 h));
    EXPECT_EQ(plain[0]["clicks"], 1);
}

TEST(TrainingRun, csv_output_quotes_what_it_must_and_names_columns_like_feast) {
    const config cfg = two_sets();
    fake_history h;
    h.sets[0] = {{"a,b", T0, T0, {std::int64_t{1}, std::string("say \"hi\""), T0}}};
    training_request req;
    req.features = {"users:country", "users:seen", "users:clicks"};
    req.full_feature_names = true;
    req.output = table_format::csv;
    const auto out = run(cfg, req,
                         "{\"user_id\":\"a,b\",\"event_timestamp\":" + std::to_string(T0) +
                             ",\"note\":\"x\"}\n{\"user_id\":\"zz\",\"event_timestamp\":" + std::to_string(T0) + ",\"note\":null}\n",
                         h);
    EXPECT_EQ(out,
              "user_id,event_timestamp,note,users__country,users__seen,users__clicks\n"
              "\"a,b\",2025-11-01T10:00:00.000Z,x,\"say \"\"hi\"\"\",2025-11-01T10:00:00.000Z,1\n"
              "zz,2025-11-01T10:00:00.000Z,,,,\n");
}

TEST(TrainingRun, no_rows_is_a_header_only_and_a_pass_through_named_like_a_feature_is_refused) {
    const config cfg = two_sets();
    fake_history h;
    training_request req;
    req.features = {"users:clicks"};
    req.output = table_format::csv;
    EXPECT_EQ(run(cfg, req, "", h), "user_id,event_timestamp,clicks\n");
    EXPECT_EQ(h.calls, 0u);

    auto plan = plan_training_set(cfg, req, [&](std::string_view n) { return resolve_in(cfg, n); });
    ASSERT_TRUE(plan);
    auto reader = ndjson_entity_reader(text_source("{\"user_id\":\"u\",\"event_timestamp\":1,\"clicks\":3}\n"), plan->columns);
    training_sink sink;
    sink.write = [](std::string_view) { return true; };
    auto done = run_training_set(cfg, *plan, *reader, h, sink, {});
    ASSERT_FALSE(done);
    EXPECT_NE(done.message().find("the entity rows' column \"clicks\" has the name of a feature column"), std::string::npos);
}

TEST(TrainingRun, a_receiver_that_goes_away_stops_the_export) {
    const config cfg = two_sets();
    fake_history h;
    training_request req;
    req.features = {"users:clicks"};
    auto plan = plan_training_set(cfg, req, [&](std::string_view n) { return resolve_in(cfg, n); });
    ASSERT_TRUE(plan);
    std::string rows;
    for (int i = 0; i < 100; ++i) rows += "{\"user_id\":\"u\",\"event_timestamp\":1761991200000}\n";
    auto reader = ndjson_entity_reader(text_source(rows, 4096), plan->columns);
    int writes = 0;
    training_sink sink;
    sink.write = [&](std::string_view) { return ++writes < 2; };
    training_options options;
    options.chunk_rows = 10;
    auto done = run_training_set(cfg, *plan, *reader, h, sink, options);
    ASSERT_FALSE(done);
    EXPECT_EQ(done.message(), "the receiver has gone");
    EXPECT_LE(h.calls, 3u) << "the chunk read ahead at most, none after the receiver has gone";
}

}  // namespace
}  // namespace sluice
