// The data quality monitor (see sluice/store/quality_monitor.hpp).

#include "sluice/store/quality_monitor.hpp"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <thread>

#include "../postgres/pg_connection.hpp"
#include "sluice/core/clock.hpp"
#include "sluice/core/log.hpp"
#include "sluice/core/sketches.hpp"
#include "sluice/core/value_codec.hpp"

namespace sluice {

namespace {

constexpr std::size_t top_capacity = 32;  // values tracked per field and window
constexpr std::size_t top_shown = 10;     // in summaries, and the categories of drift
constexpr double share_floor = 1e-4;      // PSI: a share of 0 counts as this
constexpr std::size_t max_pending_rows = 10000;
constexpr double inf = std::numeric_limits<double>::infinity();

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

bool numeric(field_type t) { return t == field_type::int64 || t == field_type::float64; }
bool categorical(field_type t) { return t == field_type::string || t == field_type::boolean || t == field_type::int64; }

double number_of(const value& v) {
    if (const auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
    if (const auto* d = std::get_if<double>(&v)) return *d;
    return std::nan("");
}

// A finite number or null (JSON has no NaN).
json number_or_null(double x) { return std::isfinite(x) ? json(x) : json(nullptr); }

// One field's statistics over a window.
struct field_acc {
    std::uint64_t values = 0;
    std::uint64_t nulls = 0;
    double min = inf, max = -inf, mean = 0, m2 = 0;  // Welford, over the numeric values
    std::uint64_t numbers = 0;
    quantile_sketch quantiles{0.01};
    top_values top{top_capacity};
    distinct_counter distinct;

    void add_number(double x) {
        ++numbers;
        min = std::min(min, x);
        max = std::max(max, x);
        const double delta = x - mean;
        mean += delta / static_cast<double>(numbers);
        m2 += delta * (x - mean);
        quantiles.add(x);
    }
    void merge(const field_acc& o) {
        values += o.values;
        nulls += o.nulls;
        if (o.numbers > 0) {
            const double n = static_cast<double>(numbers), m = static_cast<double>(o.numbers);
            const double delta = o.mean - mean;
            const double total = n + m;
            mean = (n * mean + m * o.mean) / total;
            m2 += o.m2 + delta * delta * n * m / total;
            numbers += o.numbers;
            min = std::min(min, o.min);
            max = std::max(max, o.max);
            quantiles.merge(o.quantiles);
        }
        top.merge(o.top);
        distinct.merge(o.distinct);
    }
    double stddev() const { return numbers > 1 ? std::sqrt(m2 / static_cast<double>(numbers - 1)) : 0; }
};

// A window being filled.
struct window_acc {
    std::int64_t start_ms = 0;
    std::int64_t size_ms = 0;
    bool partial = false;
    bool direct = true;  // fed by observe(); false: the merge of the smallest size's windows
    std::uint64_t records = 0;
    std::uint64_t skipped_at_open = 0;
    std::map<std::string, std::uint64_t> dead_letters;  // by reason
    quantile_sketch freshness{0.01};
    std::vector<field_acc> fields;
    std::vector<std::uint64_t> outside;  // per expectation of the set: values outside (range, allowed)

    void merge(const window_acc& o) {
        records += o.records;
        for (const auto& [reason, n] : o.dead_letters) dead_letters[reason] += n;
        freshness.merge(o.freshness);
        for (std::size_t f = 0; f < fields.size() && f < o.fields.size(); ++f) fields[f].merge(o.fields[f]);
        for (std::size_t e = 0; e < outside.size() && e < o.outside.size(); ++e) outside[e] += o.outside[e];
    }
};

std::string expectation_id(const expectation_config& e) {
    return std::string(to_string(e.kind)) + (e.field.empty() ? "" : ":" + e.field) + "@" + format_duration(e.window_ms);
}

// The window's summary: what the API shows and PostgreSQL keeps (sketches included, for baselines).
json summarize(const window_acc& w, const feature_set_config& set, std::uint64_t skipped) {
    json fields = json::object();
    for (std::size_t f = 0; f < set.fields.size() && f < w.fields.size(); ++f) {
        const auto& a = w.fields[f];
        const field_type t = set.fields[f].type;
        const std::uint64_t seen = a.values + a.nulls;
        json j = {{"values", a.values},
                  {"nulls", a.nulls},
                  {"null_rate", seen ? number_or_null(static_cast<double>(a.nulls) / static_cast<double>(seen)) : json(nullptr)}};
        if (numeric(t) && a.numbers > 0) {
            j["min"] = a.min;
            j["max"] = a.max;
            j["mean"] = a.mean;
            j["stddev"] = a.stddev();
            j["p50"] = number_or_null(a.quantiles.quantile(0.5));
            j["p90"] = number_or_null(a.quantiles.quantile(0.9));
            j["p99"] = number_or_null(a.quantiles.quantile(0.99));
            j["sketch"] = a.quantiles.to_json();
        }
        if (categorical(t) && a.values > 0) {
            j["distinct"] = std::round(a.distinct.estimate());
            if (t != field_type::int64) {
                json top = json::array();
                for (const auto& e : a.top.top(top_shown)) top.push_back({e.value, e.count});
                j["top"] = std::move(top);
            }
        }
        fields[set.fields[f].name] = std::move(j);
    }
    std::uint64_t late = 0;
    if (auto it = w.dead_letters.find(to_string(dead_letter_reason::late_event)); it != w.dead_letters.end()) late = it->second;
    return {{"records", w.records},
            {"dead_letters", w.dead_letters},
            {"late", late},
            {"skipped", skipped},
            {"freshness_ms",
             {{"p50", number_or_null(w.freshness.quantile(0.5))},
              {"p90", number_or_null(w.freshness.quantile(0.9))},
              {"p99", number_or_null(w.freshness.quantile(0.99))}}},
            {"fields", std::move(fields)}};
}

// PSI between the baseline's shares e and the window's a.
double psi(const std::vector<double>& expected, const std::vector<double>& actual) {
    double sum = 0;
    for (std::size_t i = 0; i < expected.size() && i < actual.size(); ++i) {
        const double e = std::max(expected[i], share_floor), a = std::max(actual[i], share_floor);
        sum += (a - e) * std::log(a / e);
    }
    return sum;
}

// Drift of one field against the baseline's summary of it; nullopt when either side has no values.
std::optional<double> drift_of(const field_acc& now, field_type t, const json& base) {
    if (!base.is_object() || now.values == 0) return std::nullopt;
    if (numeric(t)) {
        if (!base.contains("sketch") || now.numbers == 0) return std::nullopt;
        const quantile_sketch b = quantile_sketch::from_json(base["sketch"]);
        if (b.count() == 0) return std::nullopt;
        std::vector<double> edges;
        for (int d = 1; d <= 9; ++d) {
            const double x = b.quantile(d / 10.0);
            if (edges.empty() || x > edges.back()) edges.push_back(x);
        }
        std::vector<double> e, a;
        double prev_e = 0, prev_a = 0;
        for (double x : edges) {
            const double ce = b.rank_fraction(x), ca = now.quantiles.rank_fraction(x);
            e.push_back(ce - prev_e);
            a.push_back(ca - prev_a);
            prev_e = ce;
            prev_a = ca;
        }
        e.push_back(1 - prev_e);
        a.push_back(1 - prev_a);
        return psi(e, a);
    }
    if (!base.contains("top") || !base["top"].is_array() || base.value("values", std::uint64_t{0}) == 0) return std::nullopt;
    const double base_values = base["values"].get<double>();
    std::map<std::string, std::uint64_t> current;
    for (const auto& entry : now.top.top(top_capacity)) current[entry.value] = entry.count;
    std::vector<double> e, a;
    double e_sum = 0, a_sum = 0;
    for (const auto& item : base["top"]) {
        const std::string v = item[0].get<std::string>();
        e.push_back(item[1].get<double>() / base_values);
        const auto it = current.find(v);
        a.push_back(it == current.end() ? 0 : static_cast<double>(it->second) / static_cast<double>(now.values));
        e_sum += e.back();
        a_sum += a.back();
    }
    e.push_back(std::max(0.0, 1 - e_sum));  // "other"
    a.push_back(std::max(0.0, 1 - a_sum));
    return psi(e, a);
}

bool within(double x, const expectation_config& e) { return (!e.min || x >= *e.min) && (!e.max || x <= *e.max); }

expectation_result judge(const expectation_config& e, std::size_t index, const window_acc& w, const feature_set_config& set,
                         const json* baseline, std::int64_t newest_event_ms, std::int64_t now) {
    expectation_result r;
    r.id = expectation_id(e);
    r.description = e.describe();
    const field_acc* f = e.field.empty() || e.field_index >= w.fields.size() ? nullptr : &w.fields[e.field_index];
    const auto not_judged = [&](const char* why) {
        r.evaluated = false;
        r.note = why;
        return r;
    };
    r.evaluated = true;
    switch (e.kind) {
        case expectation_kind::null_rate: {
            const std::uint64_t seen = f ? f->values + f->nulls : 0;
            if (seen == 0) return not_judged("no records in the window");
            r.observed = static_cast<double>(f->nulls) / static_cast<double>(seen);
            r.passed = r.observed <= e.max.value_or(0);
            break;
        }
        case expectation_kind::range:
        case expectation_kind::allowed: {
            if (!f || f->values == 0) return not_judged("no values in the window");
            r.observed = static_cast<double>(index < w.outside.size() ? w.outside[index] : 0) / static_cast<double>(f->values);
            r.passed = r.observed <= e.max_outside;
            break;
        }
        case expectation_kind::mean:
            if (!f || f->numbers == 0) return not_judged("no values in the window");
            r.observed = f->mean;
            r.passed = within(r.observed, e);
            break;
        case expectation_kind::distinct:
            if (!f || f->values == 0) return not_judged("no values in the window");
            r.observed = std::round(f->distinct.estimate());
            r.passed = within(r.observed, e);
            break;
        case expectation_kind::records:
            if (w.partial) return not_judged("a partial window (the daemon started in it)");
            r.observed = static_cast<double>(w.records);
            r.passed = within(r.observed, e);
            break;
        case expectation_kind::freshness:
            if (w.records > 0) {
                r.observed = w.freshness.quantile(0.99);
            } else if (newest_event_ms >= 0) {
                r.observed = static_cast<double>(now - newest_event_ms);
                r.note = "no records in the window: the age of the newest event";
            } else {
                return not_judged("no records yet");
            }
            r.passed = r.observed <= e.max.value_or(0);
            break;
        case expectation_kind::drift: {
            if (!baseline) return not_judged("no baseline window yet");
            const auto name = set.fields[e.field_index].name;
            const auto all = baseline->find("fields");
            if (!f || all == baseline->end() || !all->contains(name)) return not_judged("no values to compare");
            const json& fields = *all;
            const auto d = drift_of(*f, set.fields[e.field_index].type, fields[name]);
            if (!d) return not_judged("no values to compare");
            r.observed = *d;
            r.passed = r.observed <= e.max.value_or(0);
            break;
        }
    }
    if (!r.passed) r.note = "observed " + std::to_string(r.observed);
    return r;
}

json result_json(const expectation_result& r) {
    return {{"id", r.id}, {"description", r.description}, {"evaluated", r.evaluated},
            {"passed", r.passed}, {"observed", number_or_null(r.observed)}, {"note", r.note}};
}

expectation_result result_from_json(const json& j) {
    expectation_result r;
    r.id = j.value("id", "");
    r.description = j.value("description", "");
    r.evaluated = j.value("evaluated", false);
    r.passed = j.value("passed", true);
    r.observed = j.contains("observed") && j["observed"].is_number() ? j["observed"].get<double>() : 0;
    r.note = j.value("note", "");
    return r;
}

}  // namespace

struct quality_monitor::impl {
    impl(const config& c, const pipeline_stats* s)
        : cfg(std::shared_ptr<const config>(), &c), base(c), stats(s), log(module_logger(log_module::store)) {
        sizes = c.quality.windows_ms;
        std::sort(sizes.begin(), sizes.end());
        sets.resize(c.feature_sets.size());
        for (auto& st : sets) st = std::make_unique<set_state>();
    }

    struct set_state {
        mutable std::mutex mutex;
        std::vector<window_acc> open;                     // one per size, in `sizes` order
        std::vector<std::deque<quality_window>> closed;   // newest first, per size
        std::map<std::int64_t, json> baselines;           // by size: a window's summary
        std::map<std::string, bool> passing;              // by expectation id: the last verdict
        std::map<std::string, std::uint64_t> failures;    // by expectation id: failed windows
        std::map<std::string, double> drift;              // by field@size: the last PSI
        std::int64_t newest_event_ms = -1;
        std::uint64_t quarantined = 0;                    // records held by a quarantine expectation, ever
    };

    mutable std::mutex cfg_mutex;
    std::shared_ptr<const config> cfg;
    const config& base;  // the start's: the sets' order and names
    const pipeline_stats* stats;
    std::shared_ptr<spdlog::logger> log;
    std::vector<std::int64_t> sizes;  // ascending
    std::vector<std::unique_ptr<set_state>> sets;
    std::function<void(const std::string&, const expectation_result&, std::int64_t)> changed;

    std::unique_ptr<pg::connection> conn;
    std::mutex pending_mutex;
    std::vector<std::pair<std::string, std::vector<std::string>>> pending;  // statements and their parameters
    std::uint64_t pending_dropped = 0;
    bool warned = false;

    std::thread thread;
    std::mutex wake_mutex;
    std::condition_variable wake;
    bool stopping = false;

    std::shared_ptr<const config> current() const {
        std::lock_guard lock(cfg_mutex);
        return cfg;
    }

    std::string table(const char* name) const { return pg::quote_ident(base.postgres->schema) + "." + name; }

    // A size is merged from the smallest windows when it is a multiple of the smallest.
    bool direct(std::size_t i) const { return i == 0 || sizes[i] % sizes[0] != 0; }

    window_acc fresh_window(const feature_set_config& set, std::size_t size_index, std::int64_t now, bool partial) const {
        window_acc w;
        w.size_ms = sizes[size_index];
        w.start_ms = now - now % w.size_ms;
        w.partial = partial;
        w.direct = direct(size_index);
        w.fields.resize(set.fields.size());
        w.outside.assign(set.expectations.size(), 0);
        return w;
    }

    void open_all(std::int64_t now) {
        const auto c = current();
        for (std::size_t s = 0; s < sets.size(); ++s) {
            auto& st = *sets[s];
            std::lock_guard lock(st.mutex);
            st.closed.resize(sizes.size());
            st.open.clear();
            for (std::size_t i = 0; i < sizes.size(); ++i) {
                st.open.push_back(fresh_window(c->feature_sets[s], i, now, /*partial=*/true));
                if (stats) st.open.back().skipped_at_open = stats->set(static_cast<std::uint32_t>(s)).skipped.load();
            }
        }
    }

    void observe_record(set_state& st, const feature_set_config& set, const record& r) {
        st.newest_event_ms = std::max(st.newest_event_ms, r.event_time_ms);
        for (auto& w : st.open) {
            if (!w.direct) continue;
            ++w.records;
            w.freshness.add(static_cast<double>(r.ingested_at_ms - r.event_time_ms));
            const std::size_t n = std::min({set.fields.size(), r.values.size(), w.fields.size()});
            for (std::size_t f = 0; f < n; ++f) {
                field_acc& a = w.fields[f];
                const value& v = r.values[f];
                if (std::holds_alternative<std::monostate>(v)) {
                    ++a.nulls;
                    continue;
                }
                ++a.values;
                const field_type t = set.fields[f].type;
                if (numeric(t)) a.add_number(number_of(v));
                if (t == field_type::int64) {
                    const auto x = std::get<std::int64_t>(v);
                    a.distinct.add(std::string_view(reinterpret_cast<const char*>(&x), sizeof x));
                } else if (const auto* text = std::get_if<std::string>(&v)) {
                    a.top.add(*text);
                    a.distinct.add(*text);
                } else if (const auto* b = std::get_if<bool>(&v)) {
                    const std::string_view word = *b ? "true" : "false";
                    a.top.add(word);
                    a.distinct.add(word);
                }
            }
            for (std::size_t e = 0; e < set.expectations.size() && e < w.outside.size(); ++e) {
                const auto& x = set.expectations[e];
                if (x.kind != expectation_kind::range && x.kind != expectation_kind::allowed) continue;
                if (x.field_index >= r.values.size()) continue;
                const value& v = r.values[x.field_index];
                if (std::holds_alternative<std::monostate>(v)) continue;
                bool out = false;
                if (x.kind == expectation_kind::range) {
                    const double d = number_of(v);
                    out = (x.min && d < *x.min) || (x.max && d > *x.max);
                } else {
                    out = std::find(x.values.begin(), x.values.end(), v) == x.values.end();
                }
                w.outside[e] += out;
            }
        }
    }

    // Closes one window: its summary, its verdicts, the baseline if it is the first, the rows to write.
    void close_window(std::size_t s, set_state& st, std::size_t i, std::int64_t now, const config& c) {
        const feature_set_config& set = c.feature_sets[s];
        window_acc& w = st.open[i];
        const std::uint64_t skipped_now = stats ? stats->set(static_cast<std::uint32_t>(s)).skipped.load() : 0;
        quality_window q;
        q.feature_set = set.display_name();
        q.size_ms = w.size_ms;
        q.start_ms = w.start_ms;
        q.partial = w.partial;
        q.records = w.records;
        q.stats = summarize(w, set, skipped_now - w.skipped_at_open);
        const auto base_it = st.baselines.find(w.size_ms);
        const json* baseline = base_it == st.baselines.end() ? nullptr : &base_it->second;
        for (std::size_t e = 0; e < set.expectations.size(); ++e) {
            const auto& x = set.expectations[e];
            if (x.window_ms != w.size_ms) continue;
            auto r = judge(x, e, w, set, baseline, st.newest_event_ms, now);
            if (x.kind == expectation_kind::drift && r.evaluated)
                st.drift[x.field + "@" + format_duration(w.size_ms)] = r.observed;
            if (r.evaluated) {
                const auto was = st.passing.find(r.id);
                if (!r.passed) ++st.failures[r.id];
                if ((was == st.passing.end() && !r.passed) || (was != st.passing.end() && was->second != r.passed)) {
                    if (changed) changed(q.feature_set, r, w.start_ms);
                    log->log(r.passed ? spdlog::level::info : spdlog::level::warn, "quality {} {} window {}: {} {}",
                             q.feature_set, format_duration(w.size_ms), format_rfc3339_ms(w.start_ms), r.description,
                             r.passed ? "passes again" : "FAILED, " + r.note);
                }
                st.passing[r.id] = r.passed;
            }
            q.results.push_back(std::move(r));
        }
        // The first full window with records is the baseline of drift (per size).
        const bool has_drift = std::any_of(set.expectations.begin(), set.expectations.end(), [&](const auto& x) {
            return x.kind == expectation_kind::drift && x.window_ms == w.size_ms;
        });
        if (has_drift && !baseline && !w.partial && w.records > 0) {
            st.baselines[w.size_ms] = q.stats;
            if (conn)
                queue("INSERT INTO " + table("quality_baselines") +
                      " (feature_set, window_ms, window_start, stats) VALUES ($1, $2, to_timestamp($3::double precision / 1000), $4)"
                      " ON CONFLICT (feature_set, window_ms) DO NOTHING",
                  {q.feature_set, std::to_string(q.size_ms), std::to_string(q.start_ms), q.stats.dump()});
            log->info("quality {}: window {} of {} is the drift baseline", q.feature_set, format_rfc3339_ms(w.start_ms),
                      format_duration(w.size_ms));
        }
        json results = json::array();
        for (const auto& r : q.results) results.push_back(result_json(r));
        if (conn)
            queue("INSERT INTO " + table("quality_windows") +
                  " (feature_set, window_ms, window_start, partial, records, stats, results) VALUES ($1, $2,"
                  " to_timestamp($3::double precision / 1000), $4, $5, $6, $7)",
              {q.feature_set, std::to_string(q.size_ms), std::to_string(q.start_ms), q.partial ? "true" : "false",
               std::to_string(q.records), q.stats.dump(), results.dump()});
        // The larger sizes made of this one take it in.
        if (i == 0)
            for (std::size_t j = 1; j < st.open.size(); ++j)
                if (!st.open[j].direct && w.start_ms >= st.open[j].start_ms) st.open[j].merge(w);
        auto& kept = st.closed[i];
        kept.push_front(std::move(q));
        while (kept.size() > static_cast<std::size_t>(c.quality.keep_windows)) kept.pop_back();
        w = fresh_window(set, i, now, /*partial=*/false);
        w.skipped_at_open = skipped_now;
    }

    void queue(std::string sql, std::vector<std::string> params) {
        if (!conn) return;
        std::lock_guard lock(pending_mutex);
        if (pending.size() >= max_pending_rows) {
            ++pending_dropped;
            return;
        }
        pending.emplace_back(std::move(sql), std::move(params));
    }

    void flush() {
        if (!conn) return;
        std::vector<std::pair<std::string, std::vector<std::string>>> batch;
        {
            std::lock_guard lock(pending_mutex);
            batch.swap(pending);
        }
        std::size_t done = 0;
        for (; done < batch.size(); ++done) {
            std::vector<const char*> values;
            for (const auto& p : batch[done].second) values.push_back(p.c_str());
            if (auto r = conn->exec_params(batch[done].first, values); !r) {
                if (!warned) log->warn("quality: writing windows to PostgreSQL failed, will retry: {}", r.message());
                warned = true;
                break;
            }
            warned = false;
        }
        if (done == batch.size()) return;
        std::lock_guard lock(pending_mutex);
        pending.insert(pending.begin(), std::make_move_iterator(batch.begin() + static_cast<std::ptrdiff_t>(done)),
                       std::make_move_iterator(batch.end()));
    }
};

quality_monitor::quality_monitor(const config& cfg, const pipeline_stats* stats)
    : impl_(std::make_unique<impl>(cfg, stats)) {}

quality_monitor::~quality_monitor() { stop(); }

status quality_monitor::prepare() {
    auto& d = *impl_;
    d.open_all(now_ms());
    if (!d.base.postgres) return status::success();
    d.conn = std::make_unique<pg::connection>(d.base.postgres->dsn, std::vector<std::string>{"SET client_min_messages = warning"});
    for (const std::string& sql :
         {"CREATE SCHEMA IF NOT EXISTS " + pg::quote_ident(d.base.postgres->schema),
          "CREATE TABLE IF NOT EXISTS " + d.table("quality_windows") +
              " (feature_set text NOT NULL, window_ms bigint NOT NULL, window_start timestamptz NOT NULL,"
              " partial boolean NOT NULL, records bigint NOT NULL, stats jsonb NOT NULL, results jsonb NOT NULL,"
              " written_at timestamptz NOT NULL DEFAULT now(), id bigserial PRIMARY KEY)",
          // A restart within a window writes a second, partial row for its start: both are kept.
          "CREATE INDEX IF NOT EXISTS quality_windows_set_start ON " + d.table("quality_windows") +
              " (feature_set, window_ms, window_start)",
          "CREATE TABLE IF NOT EXISTS " + d.table("quality_baselines") +
              " (feature_set text NOT NULL, window_ms bigint NOT NULL, window_start timestamptz NOT NULL,"
              " stats jsonb NOT NULL, captured_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (feature_set, window_ms))"}) {
        if (auto r = d.conn->exec(sql); !r) return status::failure("quality tables: " + r.message());
    }
    // What earlier runs wrote: the last windows of each size, and the baselines.
    for (std::size_t s = 0; s < d.sets.size(); ++s) {
        auto& st = *d.sets[s];
        const std::string name = d.base.feature_sets[s].display_name();
        auto rows = d.conn->exec_params(
            "SELECT window_ms, (extract(epoch from window_start) * 1000)::bigint, partial, records, stats::text, results::text"
            " FROM (SELECT *, row_number() OVER (PARTITION BY window_ms ORDER BY window_start DESC) AS n FROM " +
                d.table("quality_windows") + " WHERE feature_set = $1) w WHERE n <= $2 ORDER BY window_start DESC",
            {name.c_str(), std::to_string(d.base.quality.keep_windows).c_str()});
        if (!rows) return status::failure("reading quality windows: " + rows.message());
        PGresult* r = rows.value().get();
        std::lock_guard lock(st.mutex);
        for (int i = 0; i < PQntuples(r); ++i) {
            const std::int64_t size = std::strtoll(PQgetvalue(r, i, 0), nullptr, 10);
            const auto pos = std::find(d.sizes.begin(), d.sizes.end(), size);
            if (pos == d.sizes.end()) continue;
            quality_window q;
            q.feature_set = name;
            q.size_ms = size;
            q.start_ms = std::strtoll(PQgetvalue(r, i, 1), nullptr, 10);
            q.partial = PQgetvalue(r, i, 2)[0] == 't';
            q.records = std::strtoull(PQgetvalue(r, i, 3), nullptr, 10);
            q.stats = json::parse(PQgetvalue(r, i, 4), nullptr, false);
            for (const auto& j : json::parse(PQgetvalue(r, i, 5), nullptr, false)) q.results.push_back(result_from_json(j));
            for (const auto& res : q.results)
                if (res.evaluated && !st.passing.count(res.id)) st.passing[res.id] = res.passed;
            st.closed[static_cast<std::size_t>(pos - d.sizes.begin())].push_back(std::move(q));
        }
        auto base_rows = d.conn->exec_params("SELECT window_ms, stats::text FROM " + d.table("quality_baselines") +
                                                 " WHERE feature_set = $1",
                                             {name.c_str()});
        if (!base_rows) return status::failure("reading quality baselines: " + base_rows.message());
        PGresult* b = base_rows.value().get();
        for (int i = 0; i < PQntuples(b); ++i)
            st.baselines[std::strtoll(PQgetvalue(b, i, 0), nullptr, 10)] = json::parse(PQgetvalue(b, i, 1), nullptr, false);
    }
    return status::success();
}

void quality_monitor::start() {
    auto& d = *impl_;
    d.thread = std::thread([&d, this] {
        std::unique_lock lock(d.wake_mutex);
        while (!d.stopping) {
            d.wake.wait_for(lock, std::chrono::milliseconds(200));
            if (d.stopping) break;
            lock.unlock();
            close_due(now_ms());
            d.flush();
            lock.lock();
        }
    });
}

void quality_monitor::stop() {
    auto& d = *impl_;
    {
        std::lock_guard lock(d.wake_mutex);
        if (d.stopping) return;
        d.stopping = true;
    }
    d.wake.notify_all();
    if (d.thread.joinable()) d.thread.join();
    // The open windows did not run their length: written as partial.
    const auto c = d.current();
    const auto now = now_ms();
    for (std::size_t s = 0; s < d.sets.size(); ++s) {
        auto& st = *d.sets[s];
        std::lock_guard lock(st.mutex);
        for (std::size_t i = 0; i < st.open.size(); ++i) {
            st.open[i].partial = true;
            d.close_window(s, st, i, now, *c);
        }
    }
    d.flush();
}

void quality_monitor::observe(const write_batch& batch) {
    auto& d = *impl_;
    const auto c = d.current();
    impl::set_state* st = nullptr;
    std::uint32_t held = std::numeric_limits<std::uint32_t>::max();
    std::unique_lock<std::mutex> lock;
    const auto hold = [&](std::uint32_t s) {
        if (s == held) return;
        if (lock.owns_lock()) lock.unlock();
        st = s < d.sets.size() ? d.sets[s].get() : nullptr;
        held = s;
        if (st) lock = std::unique_lock(st->mutex);
    };
    for (const auto& r : batch.records) {
        hold(r.set_index);
        if (st && r.set_index < c->feature_sets.size()) d.observe_record(*st, c->feature_sets[r.set_index], r);
    }
    for (const auto& dl : batch.dead_letters) {
        hold(dl.set_index);
        if (!st) continue;
        st->quarantined += dl.reason == dead_letter_reason::quarantined;
        for (auto& w : st->open)
            if (w.direct) ++w.dead_letters[to_string(dl.reason)];
    }
}

void quality_monitor::close_due(std::int64_t now) {
    auto& d = *impl_;
    const auto c = d.current();
    for (std::size_t s = 0; s < d.sets.size() && s < c->feature_sets.size(); ++s) {
        auto& st = *d.sets[s];
        std::lock_guard lock(st.mutex);
        for (std::size_t i = 0; i < st.open.size(); ++i)
            if (now >= st.open[i].start_ms + st.open[i].size_ms) d.close_window(s, st, i, now, *c);
    }
}

void quality_monitor::reconfigure(std::shared_ptr<const config> cfg) {
    auto& d = *impl_;
    {
        std::lock_guard lock(d.cfg_mutex);
        d.cfg = cfg;
    }
    for (std::size_t s = 0; s < d.sets.size() && s < cfg->feature_sets.size(); ++s) {
        auto& st = *d.sets[s];
        std::lock_guard lock(st.mutex);
        for (auto& w : st.open) w.outside.assign(cfg->feature_sets[s].expectations.size(), 0);
    }
}

void quality_monitor::on_change(
    std::function<void(const std::string& set, const expectation_result& r, std::int64_t window_start)> f) {
    impl_->changed = std::move(f);
}

nlohmann::ordered_json quality_monitor::report(std::uint32_t set_index, std::int64_t from_ms, std::int64_t to_ms) const {
    const auto& d = *impl_;
    const auto c = d.current();
    ojson out;
    if (set_index >= d.sets.size() || set_index >= c->feature_sets.size()) return out;
    const auto& set = c->feature_sets[set_index];
    const auto& st = *d.sets[set_index];
    std::lock_guard lock(st.mutex);
    out["feature_set"] = set.display_name();
    ojson windows = ojson::array();
    for (std::size_t i = 0; i < d.sizes.size() && i < st.open.size(); ++i) {
        const auto& w = st.open[i];
        ojson j;
        j["size"] = format_duration(d.sizes[i]);
        ojson open;
        open["start"] = format_rfc3339_ms(w.start_ms);
        open["partial"] = w.partial;
        // A larger window's own figures are its closed parts' (the open part of the smallest joins at its close).
        open["stats"] = summarize(w, set, 0);
        open["stats"].erase("skipped");
        j["open"] = std::move(open);
        ojson recent = ojson::array();
        for (const auto& q : st.closed[i]) {
            if ((from_ms > 0 && q.start_ms < from_ms) || (to_ms > 0 && q.start_ms >= to_ms)) continue;
            ojson r;
            r["start"] = format_rfc3339_ms(q.start_ms);
            r["partial"] = q.partial;
            r["records"] = q.records;
            r["stats"] = q.stats;
            ojson results = ojson::array();
            for (const auto& e : q.results) results.push_back(ojson(result_json(e)));
            r["expectations"] = std::move(results);
            recent.push_back(std::move(r));
        }
        j["closed"] = std::move(recent);
        j["baseline"] = st.baselines.count(d.sizes[i]) ? ojson(true) : ojson(false);
        windows.push_back(std::move(j));
    }
    out["windows"] = std::move(windows);
    ojson expectations = ojson::array();
    for (const auto& e : set.expectations) {
        const std::string id = expectation_id(e);
        ojson j;
        j["id"] = id;
        j["description"] = e.describe();
        j["window"] = format_duration(e.window_ms);
        j["severity"] = e.severity == expectation_severity::quarantine ? "quarantine" : "warn";
        const auto p = st.passing.find(id);
        j["passing"] = p == st.passing.end() ? ojson(nullptr) : ojson(p->second);
        const auto f = st.failures.find(id);
        j["failed_windows"] = f == st.failures.end() ? 0 : f->second;
        expectations.push_back(std::move(j));
    }
    out["expectations"] = std::move(expectations);
    return out;
}

result<quality_gate> quality_monitor::gate(std::uint32_t set_index, std::int64_t from_ms, std::int64_t to_ms) const {
    const auto& d = *impl_;
    if (set_index >= d.base.feature_sets.size()) return result<quality_gate>::failure("no such feature set");
    if (d.base.postgres) return quality_gate_from_postgres(d.base, d.base.feature_sets[set_index], from_ms, to_ms);
    quality_gate g;
    const auto& st = *d.sets[set_index];
    std::lock_guard lock(st.mutex);
    for (const auto& kept : st.closed)
        for (const auto& q : kept) {
            if (q.start_ms < from_ms || q.start_ms >= to_ms) continue;
            ++g.windows;
            for (const auto& r : q.results)
                if (r.evaluated && !r.passed)
                    g.failures.push_back(format_rfc3339_ms(q.start_ms) + " " + format_duration(q.size_ms) + ": " +
                                         r.description + ", " + r.note);
        }
    g.passed = g.failures.empty();
    return g;
}

void quality_monitor::append_metrics(std::string& out, const std::string& env) const {
    const auto& d = *impl_;
    const auto c = d.current();
    std::string null_ratio, passing, failures, drift, records, quarantined;
    for (std::size_t s = 0; s < d.sets.size() && s < c->feature_sets.size(); ++s) {
        const auto& set = c->feature_sets[s];
        const auto& st = *d.sets[s];
        const std::string labels = env + ",feature_set=\"" + set.display_name() + "\"";
        std::lock_guard lock(st.mutex);
        quarantined += "sluice_quarantined_records_total{" + labels + "} " + std::to_string(st.quarantined) + "\n";
        for (std::size_t i = 0; i < st.closed.size(); ++i) {
            if (st.closed[i].empty()) continue;
            const auto& q = st.closed[i].front();
            const std::string window = ",window=\"" + format_duration(q.size_ms) + "\"";
            records += "sluice_quality_window_records{" + labels + window + "} " + std::to_string(q.records) + "\n";
            if (i != 0) continue;
            // Per field, the newest closed window in which it was seen (a silent window has no ratio).
            for (const auto& field : set.fields) {
                for (const auto& w : st.closed[i]) {
                    const auto fields = w.stats.find("fields");
                    if (fields == w.stats.end() || !fields->contains(field.name)) continue;
                    const json& f = fields->at(field.name);
                    if (!f.is_object() || !f.contains("null_rate") || !f["null_rate"].is_number()) continue;
                    null_ratio += "sluice_quality_null_ratio{" + labels + ",field=\"" + field.name + "\"" + window +
                                  "} " + std::to_string(f["null_rate"].get<double>()) + "\n";
                    break;
                }
            }
        }
        for (const auto& e : set.expectations) {
            const std::string id = expectation_id(e);
            const std::string l = labels + ",expectation=\"" + id + "\"";
            const auto p = st.passing.find(id);
            if (p != st.passing.end()) passing += "sluice_quality_expectation_passing{" + l + "} " + (p->second ? "1" : "0") + "\n";
            const auto f = st.failures.find(id);
            failures += "sluice_quality_expectation_failures_total{" + l + "} " +
                        std::to_string(f == st.failures.end() ? 0 : f->second) + "\n";
        }
        for (const auto& [key, psi] : st.drift) {
            const auto at = key.find('@');
            drift += "sluice_quality_drift_psi{" + labels + ",field=\"" + key.substr(0, at) + "\",window=\"" +
                     key.substr(at + 1) + "\"} " + std::to_string(psi) + "\n";
        }
    }
    const auto family = [&out](const char* name, const char* type, const char* help, const std::string& samples) {
        out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + samples;
    };
    family("sluice_quality_window_records", "gauge", "Records written in the last closed quality window", records);
    family("sluice_quality_null_ratio", "gauge",
           "Share of null values of a field in the last closed window of the smallest size", null_ratio);
    family("sluice_quality_expectation_passing", "gauge",
           "1 when the expectation passed its last judged window, else 0", passing);
    family("sluice_quality_expectation_failures_total", "counter", "Windows in which the expectation failed", failures);
    family("sluice_quarantined_records_total", "counter",
           "Records held in the quarantine by an expectation (since start)", quarantined);
    family("sluice_quality_drift_psi", "gauge", "PSI of a field's last judged window against its baseline window", drift);
}

result<quality_gate> quality_gate_from_postgres(const config& cfg, const feature_set_config& set, std::int64_t from_ms,
                                                std::int64_t to_ms) {
    using R = result<quality_gate>;
    if (!cfg.postgres) return R::failure("the quality gate needs PostgreSQL");
    pg::connection conn(cfg.postgres->dsn, {});
    // A schema whose daemon never kept quality statistics has no windows, and so no failures.
    auto exists = conn.exec_params("SELECT to_regclass($1) IS NOT NULL", {(cfg.postgres->schema + ".quality_windows").c_str()});
    if (!exists) return R::failure(exists.message());
    if (PQgetvalue(exists.value().get(), 0, 0)[0] != 't') return quality_gate{};
    auto rows = conn.exec_params(
        "SELECT window_ms, (extract(epoch from window_start) * 1000)::bigint, results::text FROM " +
            pg::quote_ident(cfg.postgres->schema) +
            ".quality_windows WHERE feature_set = $1 AND window_start >= to_timestamp($2::double precision / 1000)"
            " AND window_start < to_timestamp($3::double precision / 1000) ORDER BY window_start",
        {set.display_name().c_str(), std::to_string(from_ms).c_str(), std::to_string(to_ms).c_str()});
    if (!rows) return R::failure("reading " + cfg.postgres->schema + ".quality_windows: " + rows.message());
    quality_gate g;
    PGresult* r = rows.value().get();
    for (int i = 0; i < PQntuples(r); ++i) {
        ++g.windows;
        const auto size = std::strtoll(PQgetvalue(r, i, 0), nullptr, 10);
        const auto start = std::strtoll(PQgetvalue(r, i, 1), nullptr, 10);
        for (const auto& j : json::parse(PQgetvalue(r, i, 2), nullptr, false)) {
            const auto res = result_from_json(j);
            if (res.evaluated && !res.passed)
                g.failures.push_back(format_rfc3339_ms(start) + " " + format_duration(size) + ": " + res.description + ", " +
                                     res.note);
        }
    }
    g.passed = g.failures.empty();
    return g;
}

}  // namespace sluice
