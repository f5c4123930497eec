#include "integration/support/aggregation_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "integration/support/net.hpp"
#include "integration/support/postgres.hpp"

namespace sluice::it {
namespace {

using nlohmann::json;

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
    std::int64_t q = a / b;
    if (a % b != 0 && ((a < 0) != (b < 0))) --q;
    return q;
}

// The event's value of the aggregation's field; null when the event leaves it out.
json field_value(agg_source f, const stream_event& e) {
    switch (f) {
        case agg_source::clicks: return e.clicks;
        case agg_source::spend: return e.spend;
        case agg_source::country: return e.country;
        case agg_source::premium: return e.premium ? json(*e.premium) : json(nullptr);
    }
    return nullptr;
}

bool integer_field(agg_source f) { return f == agg_source::clicks; }

// The aggregation of the events `in` selects (already in production order).
template <class Selected>
json fold_events(const agg_spec& a, const std::vector<model_event>& events, Selected&& in) {
    std::int64_t count = 0;
    std::int64_t isum = 0;
    long double dsum = 0;
    std::optional<json> best;         // min / max
    const model_event* last = nullptr;
    for (const auto& m : events) {
        if (!in(m.e->ts)) continue;
        const json v = field_value(a.field, *m.e);
        if (v.is_null()) continue;
        ++count;
        switch (a.op) {
            case agg_kind::count: break;
            case agg_kind::sum:
            case agg_kind::avg:
                if (integer_field(a.field))
                    isum += v.get<std::int64_t>();
                else
                    dsum += static_cast<long double>(v.get<double>());
                break;
            case agg_kind::min:
            case agg_kind::max: {
                const bool is_min = a.op == agg_kind::min;
                if (!best) {
                    best = v;
                } else if (integer_field(a.field)) {
                    const auto x = v.get<std::int64_t>(), y = best->get<std::int64_t>();
                    if (is_min ? x < y : x > y) best = v;
                } else {
                    const auto x = v.get<double>(), y = best->get<double>();
                    if (is_min ? x < y : x > y) best = v;
                }
                break;
            }
            case agg_kind::last:
                if (last == nullptr || m.e->ts > last->e->ts || (m.e->ts == last->e->ts && m.seq > last->seq)) last = &m;
                break;
        }
    }
    switch (a.op) {
        case agg_kind::count: return count;
        case agg_kind::sum:
            if (integer_field(a.field)) return isum;
            return static_cast<double>(dsum);
        case agg_kind::avg:
            if (count == 0) return nullptr;
            if (integer_field(a.field)) return static_cast<double>(isum) / static_cast<double>(count);
            return static_cast<double>(dsum / static_cast<long double>(count));
        case agg_kind::min:
        case agg_kind::max: return best ? *best : json(nullptr);
        case agg_kind::last: return last ? field_value(a.field, *last->e) : json(nullptr);
    }
    return nullptr;
}

double as_double(const json& v) { return v.is_number() ? v.get<double>() : std::nan(""); }

}  // namespace

const char* to_string(agg_kind op) {
    switch (op) {
        case agg_kind::count: return "count";
        case agg_kind::sum: return "sum";
        case agg_kind::avg: return "avg";
        case agg_kind::min: return "min";
        case agg_kind::max: return "max";
        case agg_kind::last: return "last";
    }
    return "?";
}

const char* to_string(agg_source field) {
    switch (field) {
        case agg_source::clicks: return "clicks";
        case agg_source::spend: return "spend";
        case agg_source::country: return "country";
        case agg_source::premium: return "premium";
    }
    return "?";
}

agg_spec make_agg(std::string name, agg_source field, agg_kind op, std::string window) {
    agg_spec a{std::move(name), field, op, std::move(window), 0};
    if (a.window.size() < 2) throw std::invalid_argument("bad window " + a.window);
    const std::int64_t n = std::stoll(a.window.substr(0, a.window.size() - 1));
    switch (a.window.back()) {
        case 'm': a.window_ms = n * 60'000; break;
        case 'h': a.window_ms = n * 3'600'000; break;
        case 'd': a.window_ms = n * 86'400'000; break;
        default: throw std::invalid_argument("bad window " + a.window);
    }
    return a;
}

json aggregation_config(const test_stack& stack, const std::string& group, int http_port, const std::string& topic,
                        const std::string& schema, const std::vector<agg_spec>& aggs,
                        const std::string& allowed_lateness) {
    json cfg = user_activity_config(stack, group, http_port, topic);
    cfg["postgres"]["schema"] = schema;
    cfg["redis"]["key_prefix"] = schema;
    json list = json::array();
    for (const auto& a : aggs)
        list.push_back({{"name", a.name}, {"field", to_string(a.field)}, {"op", to_string(a.op)}, {"window", a.window}});
    cfg["feature_sets"][0]["aggregations"] = list;
    cfg["feature_sets"][0]["allowed_lateness"] = allowed_lateness;
    return cfg;
}

void produce_event(kafka_cluster& kafka, const std::string& topic, stream_event& e, bool ts_as_text) {
    e.id = kafka.produce(topic, e.key, event_message(e, ts_as_text).dump());
}

json tiled_value(const agg_spec& a, const std::vector<model_event>& events, std::int64_t at_ms) {
    const std::int64_t tile = a.window_ms / 60;
    const std::int64_t at_tile = floor_div(at_ms, tile);
    return fold_events(a, events, [&](std::int64_t t) { return t <= at_ms && floor_div(t, tile) > at_tile - 60; });
}

json exact_value(const agg_spec& a, const std::vector<model_event>& events, std::int64_t at_ms) {
    return fold_events(a, events, [&](std::int64_t t) { return t <= at_ms && t > at_ms - a.window_ms; });
}

json tiled_values(const std::vector<agg_spec>& aggs, const std::vector<model_event>& events, std::int64_t at_ms) {
    json out = json::object();
    for (const auto& a : aggs) out[a.name] = tiled_value(a, events, at_ms);
    return out;
}

std::optional<std::string> agg_mismatch(const agg_spec& a, const json& expected, const json& actual) {
    auto bad = [&](const char* why) {
        return std::optional<std::string>(a.name + ": served " + actual.dump() + ", expected " + expected.dump() + " (" +
                                          why + ")");
    };
    if (expected.is_null()) {
        if (!actual.is_null()) return bad("empty window");
        return std::nullopt;
    }
    if (expected.is_number_integer()) {
        if (!actual.is_number_integer()) return bad("not an integer");
        if (actual.get<std::int64_t>() != expected.get<std::int64_t>()) return bad("exact");
        return std::nullopt;
    }
    if (expected.is_number_float()) {
        if (!actual.is_number()) return bad("not a number");
        const double x = actual.get<double>(), y = expected.get<double>();
        const bool approx = a.op == agg_kind::sum || a.op == agg_kind::avg;
        if (approx) {
            if (std::fabs(x - y) > 1e-9 * std::max(std::fabs(x), std::fabs(y)) + 1e-12) return bad("1e-9 relative");
        } else if (x != y) {
            return bad("exact");
        }
        return std::nullopt;
    }
    if (actual != expected) return bad("exact");
    return std::nullopt;
}

std::vector<std::string> compare_aggs(const std::vector<agg_spec>& aggs, const json& values,
                                      const std::vector<model_event>& events, std::int64_t at_lo, std::int64_t at_hi,
                                      const std::string& what) {
    auto check = [&](std::int64_t at) {
        std::vector<std::string> bad;
        for (const auto& a : aggs) {
            if (!values.is_object() || !values.contains(a.name)) {
                bad.push_back(what + ": no value \"" + a.name + "\"");
                continue;
            }
            if (auto m = agg_mismatch(a, tiled_value(a, events, at), values[a.name])) bad.push_back(what + ": " + *m);
        }
        return bad;
    };
    auto bad = check(at_lo);
    if (bad.empty() || at_hi == at_lo) return bad;
    auto bad_hi = check(at_hi);
    if (bad_hi.empty()) return bad_hi;
    for (auto& b : bad) b += " [model at " + rfc3339_ms(at_lo) + "; also wrong at " + rfc3339_ms(at_hi) + "]";
    return bad;
}

const stream_event* newest_at(const std::vector<model_event>& events, std::int64_t at_ms) {
    const stream_event* best = nullptr;
    for (const auto& m : events)
        if (m.e->ts <= at_ms && (best == nullptr || m.e->ts > best->ts)) best = m.e;
    return best;
}

std::vector<std::string> field_mismatches(const json& body, const stream_event& e, const std::string& what) {
    std::vector<std::string> bad;
    if (!body.is_object() || !body.contains("values") || !body["values"].is_object()) {
        bad.push_back(what + ": no values in " + body.dump());
        return bad;
    }
    const std::string want_time = rfc3339_ms(e.ts);
    if (!body.contains("event_time") || body["event_time"] != want_time)
        bad.push_back(what + ": event_time " + (body.contains("event_time") ? body["event_time"].dump() : "missing") +
                      ", expected " + want_time);
    const json want = e.values();
    const json& got = body["values"];
    for (const auto& [name, v] : want.items()) {
        if (!got.contains(name)) {
            bad.push_back(what + ": no field " + name);
            continue;
        }
        const bool same = v.is_number() ? (got[name].is_number() && as_double(got[name]) == as_double(v)) : got[name] == v;
        if (!same) bad.push_back(what + ": " + name + " " + got[name].dump() + ", expected " + v.dump());
    }
    return bad;
}

timed_answer get_features(int http_port, const std::string& key, const std::string& query) {
    timed_answer out;
    std::string target = "/v1/features/user_activity/" + url_encode(key);
    if (!query.empty()) target += "?" + query;
    out.sent_ms = now_ms();
    const http_response r = http_get(http_port, target);
    out.received_ms = now_ms();
    out.status = r.status;
    out.raw = r.status == 0 ? r.error : r.body;
    out.body = json::parse(r.body, nullptr, false);
    return out;
}

bool tile_edge_between(const std::vector<agg_spec>& aggs, std::int64_t a, std::int64_t b) {
    for (const auto& s : aggs) {
        const std::int64_t tile = s.window_ms / 60;
        if (floor_div(a, tile) != floor_div(b, tile)) return true;
    }
    return false;
}

json pg_text_to_json(const agg_spec& a, const std::string& text) {
    if (text == pg_null) return nullptr;
    const bool as_int = a.op == agg_kind::count ||
                        (a.op != agg_kind::avg && a.field == agg_source::clicks);
    if (as_int) return std::stoll(text);
    if (a.op == agg_kind::avg || a.field == agg_source::spend) return std::stod(text);
    if (a.field == agg_source::premium) return text == "t" || text == "true";
    return text;
}

double abs_number(const json& v) { return v.is_number() ? std::fabs(v.get<double>()) : 0.0; }

}  // namespace sluice::it
