// Every config key, section by section: name, description, default, type, bounds and where its
// value goes. This file is the config schema; `sluice --describe-config`, the README's config
// reference and config/sluice.example.json are made from it. What is done with a feature set's
// keys once read lives in feature_set_reader.cpp.

#include "key_tables.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "feature_set_reader.hpp"
#include "sluice/core/timestamp.hpp"
#include "value_checks.hpp"

namespace sluice::config_detail {
namespace {

// ---------------------------------------------------------------------------------------------
// Builders used only here

/// A string key that takes one of a few words.
template <class S>
key_spec<S> enum_key(std::string name, std::string description, std::string S::*member,
                     const std::vector<std::string>& words) {
    return with_allowed(string_key<S>(std::move(name), std::move(description), member, one_of(words)), words);
}

/// A duration key's bounds as the schema shows them.
template <class S>
key_spec<S> with_duration_range(key_spec<S> k, const duration_range& range) {
    return with_range_text(std::move(k), range.lo_text, range.hi_text);
}

template <class T>
std::vector<std::string> names_of(const std::vector<std::pair<std::string, T>>& table) {
    std::vector<std::string> names;
    for (const auto& entry : table) names.push_back(entry.first);
    return names;
}

// ---------------------------------------------------------------------------------------------
// kafka

const std::vector<key_spec<embedded_kafka_config>>& embedded_kafka_keys() {
    using S = embedded_kafka_config;
    static const std::vector<key_spec<S>> keys = {
        integer_key<S>("brokers", "brokers in the in-process mock cluster", &S::brokers, 1, 8),
        integer_key<S>("partitions", "partitions of each feature set's topic in the mock cluster", &S::partitions, 1,
                       256),
    };
    return keys;
}

void apply_kafka_properties(kafka_config& k, const json& v, const std::string& path, diagnostics& d) {
    k.properties.clear();
    for (auto it = v.begin(); it != v.end(); ++it) {
        const json& p = it.value();
        if (p.is_string())
            k.properties[it.key()] = p.get<std::string>();
        else if (p.is_boolean())
            k.properties[it.key()] = p.get<bool>() ? "true" : "false";
        else if (p.is_number())
            k.properties[it.key()] = compact(p);
        else
            d.add(child_path(path, it.key()), expected("string, number or boolean", p));
    }
}

const std::vector<key_spec<kafka_config>>& kafka_keys() {
    using S = kafka_config;
    static const std::vector<key_spec<S>> keys = {
        string_key<S>("brokers", "bootstrap brokers \"host:port,...\", or \"embedded\" for an in-process mock broker",
                      &S::brokers, non_empty()),
        string_key<S>("group_id", "consumer group; instances sharing it split the partitions", &S::group_id,
                      non_empty()),
        integer_key<S>("consumer_threads", "consumer threads, one librdkafka consumer each", &S::consumer_threads, 1,
                       64),
        integer_key<S>("max_message_bytes", "a larger message is a dead letter", &S::max_message_bytes, 1, 104857600),
        custom_key<S>("properties", "librdkafka properties, passed as they are", value_default("{}"), kind::object,
                      apply_kafka_properties),
        string_key<S>("dead_letter_topic", "topic that also receives dead letters; \"\" = none",
                      &S::dead_letter_topic),
        integer_key<S>("poll_timeout_ms", "longest a consumer poll blocks", &S::poll_timeout_ms, 1, 1000),
        with_nested(custom_key<S>("embedded", "the mock cluster started when brokers is \"embedded\"",
                                  value_default("{}"), kind::object,
                                  [](S& k, const json& v, const std::string& p, diagnostics& d) {
                                      read_object(v, p, embedded_kafka_keys(), k.embedded, d);
                                  }),
                    keys_of(embedded_kafka_keys)),
    };
    return keys;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// feature_sets

namespace {

const std::vector<std::pair<std::string, agg_op>>& agg_ops() {
    static const std::vector<std::pair<std::string, agg_op>> ops = {
        {"count", agg_op::count}, {"sum", agg_op::sum}, {"avg", agg_op::avg},
        {"min", agg_op::min},     {"max", agg_op::max}, {"last", agg_op::last}};
    return ops;
}

const std::vector<std::pair<std::string, time_fallback>>& time_fallbacks() {
    static const std::vector<std::pair<std::string, time_fallback>> fallbacks = {
        {"none", time_fallback::none}, {"kafka_timestamp", time_fallback::kafka_timestamp}};
    return fallbacks;
}

std::vector<std::string> transform_op_names() {
    std::vector<std::string> names;
    for (const auto& o : transform_ops()) names.push_back(o.name);
    return names;
}

// How long an aggregation window, the allowed lateness and a dedup window may be.
constexpr duration_range window_range = {minute_ms, max_window_ms, "1m", "30d"};
constexpr duration_range lateness_range = {0, max_window_ms, "0", "30d"};
constexpr duration_range dedup_window_range = {1000, 7LL * 86400 * 1000, "1s", "7d"};
// How long a quality window may be.
constexpr duration_range quality_window_range = {1000, max_window_ms, "1s", "30d"};

// A transform key: remembered as given (check_transform judges the keys against the op), then stored.
template <class F>
key_spec<transform_draft> draft_key(std::string name, std::string description, kind type, F store) {
    return custom_key<transform_draft>(
        name, std::move(description), no_default(), type,
        [name, store](transform_draft& t, const json& v, const std::string& p, diagnostics& d) {
            t.keys.push_back(name);
            store(t, v, p, d);
        });
}

}  // namespace

const std::vector<key_spec<field_draft>>& field_keys() {
    using S = field_draft;
    static const std::vector<key_spec<S>> keys = {
        required(with_allowed(
            custom_key<S>("type", "int, double, bool, string, timestamp or json", no_default(), kind::string,
                          [](S& f, const json& v, const std::string& p, diagnostics& d) {
                              const std::string& s = v.get_ref<const std::string&>();
                              for (const auto& [name, t] : type_names())
                                  if (name == s) {
                                      f.cfg.type = t;
                                      f.type_ok = true;
                                      return;
                                  }
                              std::string text = s;
                              d.add(p, *one_of(names_of(type_names()))(text));
                          }),
            names_of(type_names()))),
        custom_key<S>("required", "an event without this field is a dead letter", value_default("false"),
                      kind::boolean,
                      [](S& f, const json& v, const std::string&, diagnostics&) { f.cfg.required = v.get<bool>(); }),
        custom_key<S>("default", "value of the field when an event leaves it out; null if none", value_default("null"),
                      kind::any, [](S& f, const json& v, const std::string&, diagnostics&) { f.default_json = &v; }),
        custom_key<S>("min", "smallest accepted value (int and double fields)", noted_default("none"), kind::number,
                      [](S& f, const json& v, const std::string&, diagnostics&) { f.cfg.min = v.get<double>(); }),
        custom_key<S>("max", "largest accepted value (int and double fields)", noted_default("none"), kind::number,
                      [](S& f, const json& v, const std::string&, diagnostics&) { f.cfg.max = v.get<double>(); }),
        custom_key<S>("source", "JSON pointer to the value in the event, e.g. \"/device/os\"",
                      noted_default("\"/<field name>\""), kind::string,
                      [](S& f, const json& v, const std::string& p, diagnostics& d) {
                          const std::string& s = v.get_ref<const std::string&>();
                          if (auto complaint = pointer_problem(s))
                              d.add(p, std::move(*complaint));
                          else
                              f.cfg.source = s;
                      }),
        custom_key<S>("allowed", "the only values accepted (string and int fields); others are dead letters",
                      noted_default("any value"), kind::array,
                      [](S& f, const json& v, const std::string&, diagnostics&) { f.allowed_json = &v; }),
    };
    return keys;
}

const std::vector<key_spec<aggregation_config>>& aggregation_keys() {
    using S = aggregation_config;
    static const std::vector<key_spec<S>> keys = {
        required(string_key<S>("name", "name of the aggregate in the API, Redis and the latest table", &S::name,
                               identifier(max_name_len))),
        required(string_key<S>("field", "declared field it reads: int or double, or any type for count and last",
                               &S::field, non_empty())),
        required(with_allowed(custom_key<S>("op", "count, sum, avg, min, max or last", no_default(), kind::string,
                                            [](S& a, const json& v, const std::string& p, diagnostics& d) {
                                                const std::string& s = v.get_ref<const std::string&>();
                                                for (const auto& [name, op] : agg_ops())
                                                    if (name == s) {
                                                        a.op = op;
                                                        return;
                                                    }
                                                std::string text = s;
                                                d.add(p, *one_of(names_of(agg_ops()))(text));
                                            }),
                              names_of(agg_ops()))),
        // Whole minutes: the window is cut into 60 tiles of window/60, which are then whole
        // seconds, so tile edges never fall inside a second.
        required(with_duration_range(
            custom_key<S>("window", "sliding event-time window, 1m..30d in whole minutes (60 tiles of window/60)",
                          no_default(), kind::string,
                          [](S& a, const json& v, const std::string& p, diagnostics& d) {
                              const auto ms = read_duration(v, p, window_range, d);
                              if (!ms) return;
                              if (*ms % minute_ms != 0) {
                                  d.add(p,
                                        "must be a whole number of minutes (the window is cut into 60 tiles of "
                                        "window/60, each a whole number of seconds), got " +
                                            quote(v.get<std::string>()));
                                  return;
                              }
                              a.window_ms = *ms;
                          }),
            window_range)),
    };
    return keys;
}

const std::vector<key_spec<dedup_config>>& dedup_keys() {
    using S = dedup_config;
    static const std::vector<key_spec<S>> keys = {
        required(string_key<S>("field", "declared string or int field holding the event id", &S::field, non_empty())),
        with_duration_range(custom_key<S>("window", "event time an id is remembered for, 1s..7d",
                                          value_default("\"10m\""), kind::string,
                                          [](S& dd, const json& v, const std::string& p, diagnostics& d) {
                                              if (auto ms = read_duration(v, p, dedup_window_range, d))
                                                  dd.window_ms = *ms;
                                          }),
                            dedup_window_range),
        integer_key<S>("max_ids", "ids remembered per preprocess worker at most (about 100 bytes each)", &S::max_ids, 1,
                       100000000),
    };
    return keys;
}

// An expectation key: remembered as given (finish_expectations judges the keys against the kind).
template <class F>
key_spec<expectation_draft> expectation_key(std::string name, std::string description, kind type, F store) {
    return custom_key<expectation_draft>(
        name, std::move(description), no_default(), type,
        [name, store](expectation_draft& e, const json& v, const std::string& p, diagnostics& d) {
            e.keys.push_back(name);
            store(e, v, p, d);
        });
}

const std::vector<key_spec<expectation_draft>>& expectation_keys() {
    using S = expectation_draft;
    static const std::vector<key_spec<S>> keys = [] {
        std::vector<std::string> names;
        for (const auto& named : expectation_kinds()) names.push_back(named.first);
        return std::vector<key_spec<S>>{
            required(with_allowed(custom_key<S>("expect",
                                                "null_rate, range, allowed, mean, distinct, records, freshness or drift",
                                                no_default(), kind::string,
                                                [names](S& e, const json& v, const std::string& p, diagnostics& d) {
                                                    std::string s = v.get<std::string>();
                                                    for (const auto& [name, k] : expectation_kinds())
                                                        if (s == name) {
                                                            e.cfg.kind = k;
                                                            e.kind_ok = true;
                                                            return;
                                                        }
                                                    d.add(p, *one_of(names)(s));
                                                }),
                                  names)),
            expectation_key("field", "the declared field it checks (all but records and freshness)", kind::string,
                            [](S& e, const json& v, const std::string&, diagnostics&) { e.cfg.field = v.get<std::string>(); }),
            expectation_key("min", "range, mean, distinct, records: the lowest accepted", kind::number,
                            [](S& e, const json& v, const std::string&, diagnostics&) { e.min = v; }),
            expectation_key("max",
                            "null_rate (a share 0..1), range, mean, distinct, records: the highest accepted; "
                            "freshness: a duration (\"5m\"); drift: the highest PSI (0.1 small, 0.25 large)",
                            kind::any, [](S& e, const json& v, const std::string&, diagnostics&) { e.max = v; }),
            expectation_key("values", "allowed: the values accepted, of the field's type", kind::array,
                            [](S& e, const json& v, const std::string&, diagnostics&) { e.values = v; }),
            expectation_key("max_outside", "range, allowed: the share of a window's values outside, at most (default 0)",
                            kind::number, [](S& e, const json& v, const std::string& p, diagnostics& d) {
                                const double x = v.get<double>();
                                if (x < 0 || x > 1)
                                    d.add(p, "must be a share between 0 and 1, got " + compact(v));
                                else
                                    e.cfg.max_outside = x;
                            }),
            with_duration_range(expectation_key("window", "the quality window it is checked on, one of quality.windows (default \"1m\")",
                                                kind::string,
                                                [](S& e, const json& v, const std::string& p, diagnostics& d) {
                                                    if (auto ms = read_duration(v, p, quality_window_range, d))
                                                        e.cfg.window_ms = *ms;
                                                }),
                                quality_window_range),
            with_allowed(expectation_key("severity",
                                         "warn (default: reported) or quarantine (range and allowed: a record breaking "
                                         "it is held in the quarantine table, not served)",
                                         kind::string,
                                         [](S& e, const json& v, const std::string& p, diagnostics& d) {
                                             std::string s = v.get<std::string>();
                                             if (s == "warn")
                                                 e.cfg.severity = expectation_severity::warn;
                                             else if (s == "quarantine")
                                                 e.cfg.severity = expectation_severity::quarantine;
                                             else
                                                 d.add(p, *one_of({"warn", "quarantine"})(s));
                                         }),
                         {"warn", "quarantine"}),
        };
    }();
    return keys;
}

const std::vector<key_spec<transform_draft>>& transform_keys() {
    using S = transform_draft;
    const auto text = [](std::string transform_config::*member) {
        return
            [member](S& t, const json& v, const std::string&, diagnostics&) { t.cfg.*member = v.get<std::string>(); };
    };
    static const std::vector<key_spec<S>> keys = [&] {
        std::vector<key_spec<S>> k = {
            required(with_allowed(
                custom_key<S>("op", "rename, cast, default, clamp, lower, upper, trim, hash, drop or filter",
                              no_default(), kind::string,
                              [](S& t, const json& v, const std::string& p, diagnostics& d) {
                                  std::string s = v.get<std::string>();
                                  for (const auto& o : transform_ops())
                                      if (s == o.name) {
                                          t.cfg.op = o.op;
                                          t.op_ok = true;
                                          t.op_name = s;
                                          return;
                                      }
                                  d.add(p, *one_of(transform_op_names())(s));
                              }),
                transform_op_names())),
            draft_key("field", "the declared field it works on", kind::string, text(&transform_config::field)),
            draft_key("from", "rename: the event member to rename", kind::string, text(&transform_config::from)),
            draft_key("to", "rename: the new member name; cast: the field's type", kind::string,
                      text(&transform_config::to)),
            draft_key("value", "default: the value a null becomes", kind::any,
                      [](S& t, const json& v, const std::string&, diagnostics&) { t.value = &v; }),
            draft_key("min", "clamp: smallest value", kind::number,
                      [](S& t, const json& v, const std::string&, diagnostics&) { t.min = v; }),
            draft_key("max", "clamp: largest value", kind::number,
                      [](S& t, const json& v, const std::string&, diagnostics&) { t.max = v; }),
            draft_key("salt", "hash: text put before the value before hashing", kind::string,
                      text(&transform_config::salt)),
        };
        for (const auto& c : conditions) {
            const std::string name = c.name;
            const bool list = c.op == filter_op::in || c.op == filter_op::not_in;
            k.push_back(draft_key(name, std::string("filter: keep the event when the field ") + c.keeps,
                                  list ? kind::array : kind::any,
                                  [name, op = c.op](S& t, const json& v, const std::string&, diagnostics&) {
                                      if (t.operand) return;  // the second condition is reported later
                                      t.operand = &v;
                                      t.condition = name;
                                      t.cfg.condition = op;
                                  }));
        }
        return k;
    }();
    return keys;
}

const std::vector<key_spec<feature_set_config>>& feature_set_keys() {
    using S = feature_set_config;
    static const std::vector<key_spec<S>> keys = {
        required(string_key<S>("name", "name in the API and in table names", &S::name, identifier(max_name_len))),
        integer_key<S>("version",
                       "the definition's version: raise it for a breaking change, which then gets tables and Redis "
                       "keys of its own, backfilled from the topic, while the version before it keeps serving",
                       &S::version, 1, 999999),
        bool_key<S>("serving",
                    "reads of the set's name go to this version even when a newer version is live (default false: "
                    "the newest live version serves the name)",
                    &S::serving),
        required(string_key<S>("topic", "Kafka topic the events come from", &S::topic, non_empty())),
        required(string_key<S>("key", "event member holding the entity key, or a JSON pointer \"/a/b\"", &S::key_field,
                               member_or_pointer())),
        required(string_key<S>("event_time",
                               "event member (or JSON pointer) holding the event time: RFC 3339, epoch s or ms",
                               &S::event_time_field, member_or_pointer())),
        with_allowed(custom_key<S>("event_time_fallback",
                                   "none: no event time is a dead letter; kafka_timestamp: use the Kafka message's "
                                   "timestamp",
                                   value_default("\"none\""), kind::string,
                                   [](S& fs, const json& v, const std::string& p, diagnostics& d) {
                                       std::string s = v.get<std::string>();
                                       if (auto complaint = one_of(names_of(time_fallbacks()))(s)) {
                                           d.add(p, std::move(*complaint));
                                           return;
                                       }
                                       for (const auto& [name, fallback] : time_fallbacks())
                                           if (name == s) fs.event_time_fallback = fallback;
                                   }),
                     names_of(time_fallbacks())),
        with_nested(custom_key<S>("fields", "typed fields by name, in the order of the file", value_default("{}"),
                                  kind::object, apply_fields),
                    keys_of(field_keys, ".*")),
        custom_key<S>("backfill_from",
                      "where a new consumer group of the set (a version's backfill, a new set) starts when "
                      "PostgreSQL holds no offset for it: the first message at or after this time (RFC 3339 or "
                      "epoch ms)",
                      noted_default("the earliest retained message"), kind::any,
                      [](S& fs, const json& v, const std::string& p, diagnostics& d) {
                          std::optional<std::int64_t> ms;
                          if (v.is_string())
                              ms = parse_timestamp_text(v.get_ref<const std::string&>());
                          else if (fits_int64(v))
                              ms = epoch_number_to_ms(v.get<std::int64_t>());
                          if (ms && *ms > 0)
                              fs.backfill_from_ms = *ms;
                          else
                              d.add(p, "must be a time: RFC 3339 (\"2026-12-01T00:00:00Z\") or epoch milliseconds, got " +
                                           compact(v));
                      }),
        custom_key<S>("ttl", "how long a latest value is served; \"0\" = forever", value_default("\"24h\""),
                      kind::string,
                      [](S& fs, const json& v, const std::string& p, diagnostics& d) {
                          const std::string& s = v.get_ref<const std::string&>();
                          std::int64_t ms = 0;
                          if (parse_duration_ms(s, ms))
                              fs.ttl_ms = ms;
                          else
                              d.add(p, "invalid duration " + quote(s) +
                                           ": use a whole number and a unit ms, s, m, h or d, e.g. \"24h\", "
                                           "or \"0\" for never");
                      }),
        with_nested(custom_key<S>("aggregations",
                                  "windowed aggregations per key, e.g. {\"name\": \"spend_sum_1h\", ...}",
                                  value_default("[]"), kind::array, apply_aggregations),
                    keys_of(aggregation_keys, "[]")),
        with_duration_range(
            custom_key<S>("allowed_lateness",
                          "how far behind its key's newest event an event may be and still update the aggregates",
                          value_default("\"1h\""), kind::string,
                          [](S& fs, const json& v, const std::string& p, diagnostics& d) {
                              if (auto ms = read_duration(v, p, lateness_range, d)) fs.allowed_lateness_ms = *ms;
                          }),
            lateness_range),
        // Read whole in finish_transforms: they refer to fields, which may come later in the file.
        with_nested(custom_key<S>("transforms", "rename, cast, default, clamp, lower, upper, trim, hash, drop and filter",
                                  value_default("[]"), kind::array,
                                  [](S&, const json& v, const std::string& p, diagnostics& d) {
                                      if (v.size() > max_transforms)
                                          d.add(p, "at most " + std::to_string(max_transforms) +
                                                       " transforms per feature set, got " + std::to_string(v.size()));
                                  }),
                    keys_of(transform_keys, "[]")),
        // Read whole in finish_expectations: they refer to fields, which may come later in the file.
        with_nested(custom_key<S>("expectations",
                                  "data quality expectations checked per window: {\"expect\": \"null_rate\", \"field\", "
                                  "\"max\"}, ...",
                                  value_default("[]"), kind::array,
                                  [](S&, const json& v, const std::string& p, diagnostics& d) {
                                      if (v.size() > max_expectations)
                                          d.add(p, "at most " + std::to_string(max_expectations) +
                                                       " expectations per feature set, got " + std::to_string(v.size()));
                                  }),
                    keys_of(expectation_keys, "[]")),
        with_nested(custom_key<S>("dedup",
                                  "skip events whose id was seen within a window: {\"field\", \"window\", \"max_ids\"}",
                                  noted_default("off"), kind::object,
                                  [](S& fs, const json& v, const std::string& p, diagnostics& d) {
                                      read_object(v, p, dedup_keys(), fs.dedup, d);
                                  }),
                    keys_of(dedup_keys)),
    };
    return keys;
}

namespace {

// ---------------------------------------------------------------------------------------------
// pipeline, postgres, redis, http, memory, log, generator

const std::vector<key_spec<pipeline_config>>& pipeline_keys() {
    using S = pipeline_config;
    static const std::vector<key_spec<S>> keys = {
        integer_key<S>("preprocess_threads", "threads that validate and transform records", &S::preprocess_threads,
                       1, 64),
        integer_key<S>("queue_capacity", "records each stage queue holds", &S::queue_capacity, 16, 16777216),
        integer_key<S>("batch_max_records", "records per store write", &S::batch_max_records, 1, 1000000),
        integer_key<S>("batch_linger_ms", "longest a partial batch waits for more records", &S::batch_linger_ms, 0,
                       60000),
        integer_key<S>("batches_in_flight",
                       "batches written to PostgreSQL at once, each on a connection of its own: the next batch's "
                       "rows are copied while the one before it upserts latest and commits",
                       &S::batches_in_flight, 1, 4),
        number_key<S>("pause_watermark", "queue fill fraction that pauses Kafka partitions", &S::pause_watermark, 0.1,
                      1.0),
        number_key<S>("resume_watermark", "queue fill fraction below which they resume", &S::resume_watermark, 0.0,
                      1.0),
        integer_key<S>("shutdown_timeout_ms", "longest a drain on SIGTERM may take", &S::shutdown_timeout_ms, 100,
                       600000),
    };
    return keys;
}

const std::vector<key_spec<postgres_config>>& postgres_keys() {
    using S = postgres_config;
    static const std::vector<key_spec<S>> keys = {
        required(string_key<S>("dsn", "libpq connection string", &S::dsn, non_empty())),
        integer_key<S>("pool_size", "connections in the pool", &S::pool_size, 1, 64),
        string_key<S>("schema", "schema holding Sluice's tables", &S::schema, identifier(63)),
        bool_key<S>("parallel_latest",
                    "upsert latest on a second connection while history is written, committed just before "
                    "history (default false: one transaction for both)",
                    &S::parallel_latest),
        bool_key<S>("history_unique_index",
                    "also keep history unique on the Kafka source (topic, partition, offset), a second guard "
                    "besides the offsets' fencing, at an index entry per row (default false: the index is dropped)",
                    &S::history_unique_index),
    };
    return keys;
}

const std::vector<key_spec<redis_config>>& redis_keys() {
    using S = redis_config;
    static const std::vector<key_spec<S>> keys = {
        string_key<S>("host", "Redis host", &S::host, non_empty()),
        integer_key<S>("port", "Redis port", &S::port, 1, 65535),
        integer_key<S>("pool_size", "connections in the pool", &S::pool_size, 1, 64),
        string_key<S>("key_prefix", "prefix of every key, <prefix>:<set>:<key>", &S::key_prefix, no_spaces()),
        string_key<S>("username", "ACL user for AUTH (Redis 6+); \"\" = the default user", &S::username),
        string_key<S>("password", "AUTH password; \"\" = none", &S::password),
        integer_key<S>("db", "database number", &S::db, 0, 15),
        integer_key<S>("timeout_ms", "connect and command timeout", &S::timeout_ms, 1, 60000),
    };
    return keys;
}

const std::vector<std::string>& scope_names() {
    static const std::vector<std::string> names = {"read", "write", "admin"};
    return names;
}

const std::vector<key_spec<api_key_config>>& api_key_keys() {
    using S = api_key_config;
    static const std::vector<key_spec<S>> keys = {
        required(string_key<S>("name", "who holds the key (shown in logs)", &S::name, non_empty())),
        required(string_key<S>("sha256", "hex SHA-256 of the key; the key itself is never stored", &S::sha256,
                               sha256_hex())),
        required(with_allowed(custom_key<S>(
            "scopes", "what the key may do: read, write (ingest), admin (catalog details, metrics)", no_default(),
            kind::array,
            [](S& k, const json& v, const std::string& p, diagnostics& d) {
                k.scopes.clear();
                if (v.empty()) {
                    d.add(p, "must list at least one scope (read, write, admin)");
                    return;
                }
                const auto check = one_of(scope_names());
                for (std::size_t i = 0; i < v.size(); ++i) {
                    if (!v[i].is_string()) {
                        d.add(index_path(p, i), expected("string", v[i]));
                        continue;
                    }
                    std::string scope = v[i].get<std::string>();
                    if (auto complaint = check(scope))
                        d.add(index_path(p, i), std::move(*complaint));
                    else
                        k.scopes.push_back(std::move(scope));
                }
            }), scope_names())),
    };
    return keys;
}

const std::vector<key_spec<tls_config>>& tls_keys() {
    using S = tls_config;
    static const std::vector<key_spec<S>> keys = {
        string_key<S>("cert_file", "PEM certificate chain", &S::cert_file),
        string_key<S>("key_file", "PEM private key", &S::key_file),
    };
    return keys;
}

const std::vector<key_spec<rate_limit_config>>& rate_limit_keys() {
    using S = rate_limit_config;
    static const std::vector<key_spec<S>> keys = {
        number_key<S>("requests_per_sec", "sustained requests per second per client; 0 = no limit",
                      &S::requests_per_sec, 0, 1e9),
        number_key<S>("burst", "requests a client may make at once above the rate", &S::burst, 1, 1e9),
    };
    return keys;
}

// JSON "http.auth" has no struct of its own: its keys fill http_config.
const std::vector<key_spec<http_config>>& auth_keys() {
    using S = http_config;
    static const std::vector<key_spec<S>> keys = {
        with_nested(custom_key<S>("api_keys", "accepted API keys; none = auth off", value_default("[]"), kind::array,
                                  [](S& h, const json& v, const std::string& p, diagnostics& d) {
                                      h.api_keys.clear();
                                      for (std::size_t i = 0; i < v.size(); ++i) {
                                          api_key_config k;
                                          read_object(v[i], index_path(p, i), api_key_keys(), k, d);
                                          h.api_keys.push_back(std::move(k));
                                      }
                                  }),
                    keys_of(api_key_keys, "[]")),
    };
    return keys;
}

const std::vector<key_spec<http_config>>& http_keys() {
    using S = http_config;
    static const std::vector<key_spec<S>> keys = {
        string_key<S>("listen", "address to listen on, \"host:port\"; port 0 picks a free port", &S::listen,
                      listen_address()),
        integer_key<S>("threads", "io threads", &S::threads, 1, 64),
        integer_key<S>("body_limit_bytes", "largest request body", &S::body_limit_bytes, 1, 1073741824),
        integer_key<S>("header_limit_bytes", "largest request header", &S::header_limit_bytes, 512, 1048576),
        integer_key<S>("read_timeout_ms", "longest a request may take to arrive", &S::read_timeout_ms, 100, 3600000),
        integer_key<S>("idle_timeout_ms", "how long an idle keep-alive connection stays open", &S::idle_timeout_ms,
                       100, 3600000),
        integer_key<S>("write_timeout_ms", "how long a client may take no bytes of an answer before it is cut off",
                       &S::write_timeout_ms, 100, 3600000),
        integer_key<S>("lookup_threads", "threads for Redis and PostgreSQL reads", &S::lookup_threads, 1, 64),
        integer_key<S>("max_connections", "open connections at most; more are closed at once", &S::max_connections,
                       1, 1000000),
        integer_key<S>("max_lookup_keys", "keys per batch lookup and entity rows per Feast request",
                       &S::max_lookup_keys, 1, 100000),
        integer_key<S>("ingest_timeout_ms", "how long POST /v1/ingest waits for durability before 503",
                       &S::ingest_timeout_ms, 100, 600000),
        with_nested(custom_key<S>("tls",
                                  "TLS on the listener: {\"cert_file\", \"key_file\"} (PEM); absent = plain HTTP",
                                  value_default("{}"), kind::object,
                                  [](S& h, const json& v, const std::string& p, diagnostics& d) {
                                      read_object(v, p, tls_keys(), h.tls, d);
                                      if (h.tls.cert_file.empty() != h.tls.key_file.empty())
                                          d.add(p, "cert_file and key_file go together: give both or neither");
                                  }),
                    keys_of(tls_keys)),
        with_nested(custom_key<S>("rate_limit", "per-client token bucket: {\"requests_per_sec\", \"burst\"}",
                                  value_default("{}"), kind::object,
                                  [](S& h, const json& v, const std::string& p, diagnostics& d) {
                                      read_object(v, p, rate_limit_keys(), h.rate_limit, d);
                                  }),
                    keys_of(rate_limit_keys)),
        with_nested(custom_key<S>("auth", "API keys", value_default("{}"), kind::object,
                                  [](S& h, const json& v, const std::string& p, diagnostics& d) {
                                      read_object(v, p, auth_keys(), h, d);
                                  }),
                    keys_of(auth_keys)),
    };
    return keys;
}

const std::vector<key_spec<memory_config>>& memory_keys() {
    using S = memory_config;
    static const std::vector<key_spec<S>> keys = {
        bool_key<S>("enabled", "keep latest values in memory (reads look there first)", &S::enabled),
        bool_key<S>("before_commit",
                    "a batch's records are readable from memory once the writer takes the batch, before "
                    "PostgreSQL commits it (memory is at most one batch ahead); false: after the commit",
                    &S::before_commit),
    };
    return keys;
}

const std::vector<key_spec<log_config>>& log_keys() {
    using S = log_config;
    static const std::vector<key_spec<S>> keys = {
        enum_key<S>("level", "trace, debug, info, warn, error, critical or off", &S::level,
                    {"trace", "debug", "info", "warn", "error", "critical", "off"}),
        enum_key<S>("format", "text or json", &S::format, {"text", "json"}),
    };
    return keys;
}

const std::vector<key_spec<generator_config>>& generator_keys() {
    using S = generator_config;
    static const std::vector<key_spec<S>> keys = {
        bool_key<S>("enabled", "produce synthetic events for a demo", &S::enabled),
        number_key<S>("events_per_sec", "synthetic events per second", &S::events_per_sec, 0.1, 100000),
        integer_key<S>("keys", "distinct entity keys the generator uses", &S::keys, 1, 10000000),
    };
    return keys;
}

const std::vector<key_spec<quality_config>>& quality_keys() {
    using S = quality_config;
    static const std::vector<key_spec<S>> keys = {
        bool_key<S>("enabled", "keep data quality statistics and check expectations", &S::enabled),
        custom_key<S>("windows", "tumbling windows of arrival time the statistics are kept over, 1s..30d each, at most 4",
                      value_default("[\"1m\", \"1h\"]"), kind::array,
                      [](S& q, const json& v, const std::string& p, diagnostics& d) {
                          if (v.empty() || v.size() > 4) {
                              d.add(p, "must list 1 to 4 durations, got " + std::to_string(v.size()));
                              return;
                          }
                          std::vector<std::int64_t> windows;
                          for (std::size_t i = 0; i < v.size(); ++i) {
                              if (!v[i].is_string()) {
                                  d.add(index_path(p, i), "must be a duration such as \"1m\", got " + compact(v[i]));
                                  continue;
                              }
                              if (auto ms = read_duration(v[i], index_path(p, i), quality_window_range, d)) {
                                  if (std::find(windows.begin(), windows.end(), *ms) != windows.end())
                                      d.add(index_path(p, i), "is listed twice");
                                  windows.push_back(*ms);
                              }
                          }
                          q.windows_ms = windows;
                      }),
        integer_key<S>("keep_windows", "closed windows of each size kept in memory for GET .../quality", &S::keep_windows,
                       1, 10000),
    };
    return keys;
}

const std::vector<key_spec<activity_config>>& activity_keys() {
    using S = activity_config;
    static const std::vector<key_spec<S>> keys = {
        integer_key<S>("retention_days", "days an activity row is kept; older rows are pruned in small batches",
                       &S::retention_days, 1, 36500),
        integer_key<S>("buffer_rows", "activity rows held in memory while PostgreSQL is away; more are counted as dropped",
                       &S::buffer_rows, 100, 10000000),
        integer_key<S>("auth_failures_per_minute",
                       "auth failures written as a row each per minute; the rest are counted in one summary row per "
                       "client address",
                       &S::auth_failures_per_minute, 0, 100000),
    };
    return keys;
}

const std::vector<key_spec<training_config>>& training_keys() {
    using S = training_config;
    static const std::vector<key_spec<S>> keys = {
        integer_key<S>("max_concurrent", "training-set exports running at once; more are answered 429", &S::max_concurrent,
                       1, 64),
        integer_key<S>("body_limit_bytes",
                       "largest body of entity rows streamed to POST /v1/training-sets (read as it arrives, not held)",
                       &S::body_limit_bytes, 1, 1LL << 40),
        integer_key<S>("chunk_rows", "entity rows joined with history per PostgreSQL round trip", &S::chunk_rows, 1,
                       1000000),
        integer_key<S>("statement_timeout_ms", "bound of each chunk's statements on PostgreSQL; 0 = none",
                       &S::statement_timeout_ms, 0, 86400000),
        integer_key<S>("max_line_bytes", "longest entity row: an NDJSON line or a CSV record", &S::max_line_bytes, 64,
                       1LL << 30),
    };
    return keys;
}

// A non-empty list of non-empty strings, each once.
template <class S>
key_spec<S> string_list_key(std::string name, std::string description, std::vector<std::string> S::*member) {
    return custom_key<S>(std::move(name), std::move(description), no_default(), kind::array,
                         [member](S& s, const json& v, const std::string& p, diagnostics& d) {
                             auto& out = s.*member;
                             out.clear();
                             if (v.empty()) d.add(p, "must list at least one");
                             for (std::size_t i = 0; i < v.size(); ++i) {
                                 if (!v[i].is_string() || v[i].get_ref<const std::string&>().empty()) {
                                     d.add(index_path(p, i), "must be a non-empty string, got " + compact(v[i]));
                                     continue;
                                 }
                                 std::string item = v[i].get<std::string>();
                                 if (std::find(out.begin(), out.end(), item) != out.end())
                                     d.add(index_path(p, i), "is listed twice");
                                 out.push_back(std::move(item));
                             }
                         });
}

const std::vector<key_spec<feature_service_config>>& feature_service_keys() {
    using S = feature_service_config;
    static const std::vector<key_spec<S>> keys = {
        required(string_key<S>("name", "the service's name, as Feast's feature_service", &S::name, identifier(max_name_len))),
        string_key<S>("description", "what the service is for (sluice feast-definitions prints it)", &S::description),
        required(string_list_key<S>("features", "its features, \"set:field\" or \"set:aggregation\" (\"set@N:field\" for a version)",
                                    &S::features)),
    };
    return keys;
}

const std::vector<key_spec<push_source_config>>& push_source_keys() {
    using S = push_source_config;
    static const std::vector<key_spec<S>> keys = {
        required(string_key<S>("name", "the push source's name, as Feast's push_source_name", &S::name,
                               identifier(max_name_len))),
        required(string_list_key<S>("feature_sets", "the feature sets its rows are written to", &S::feature_sets)),
    };
    return keys;
}

// A list of objects read with one key table.
template <class T>
key_spec<config> object_list_key(std::string name, std::string description, std::vector<T> config::*member,
                                 const std::vector<key_spec<T>>& (*table)()) {
    return with_nested(custom_key<config>(std::move(name), std::move(description), value_default("[]"), kind::array,
                                          [member, table](config& c, const json& v, const std::string& p, diagnostics& d) {
                                              auto& out = c.*member;
                                              out.clear();
                                              for (std::size_t i = 0; i < v.size(); ++i) {
                                                  T item;
                                                  read_object(v[i], index_path(p, i), table(), item, d);
                                                  out.push_back(std::move(item));
                                              }
                                          }),
                       keys_of(table, "[]"));
}

// A section read into its member of config.
template <class T>
key_spec<config> section_key(std::string name, std::string description, T config::*member,
                             const std::vector<key_spec<T>>& (*table)()) {
    return with_nested(custom_key<config>(std::move(name), std::move(description), value_default("{}"), kind::object,
                                          [member, table](config& c, const json& v, const std::string& p,
                                                          diagnostics& d) { read_object(v, p, table(), c.*member, d); }),
                       keys_of(table));
}

// A store section: an object turns the store on; leaving it out (or null) leaves it off.
template <class T>
key_spec<config> optional_section_key(std::string name, std::string description, std::optional<T> config::*member,
                                      const std::vector<key_spec<T>>& (*table)()) {
    auto k = custom_key<config>(std::move(name), std::move(description), value_default("null"), kind::object,
                                [member, table](config& c, const json& v, const std::string& p, diagnostics& d) {
                                    if (v.is_null()) {
                                        (c.*member).reset();
                                        return;
                                    }
                                    T read;
                                    read_object(v, p, table(), read, d);
                                    c.*member = std::move(read);
                                });
    k.nullable = true;
    return with_nested(std::move(k), keys_of(table));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The top level

const std::vector<key_spec<config>>& root_keys() {
    using S = config;
    static const std::vector<key_spec<S>> keys = {
        string_key<S>("environment",
                      "the environment this daemon runs as (sandbox, staging, production or a name): it owns the "
                      "PostgreSQL schema and Redis prefix it first runs against, and refuses another's",
                      &S::environment, identifier(max_name_len)),
        section_key("kafka", "where events come from", &S::kafka, kafka_keys),
        required(with_nested(custom_key<S>("feature_sets", "the datasets served", no_default(), kind::array,
                                           apply_feature_sets),
                             keys_of(feature_set_keys, "[]"))),
        with_nested(custom_key<S>("pipeline", "threads, queues and batching between the stages", value_default("{}"),
                                  kind::object,
                                  [](S& c, const json& v, const std::string& p, diagnostics& d) {
                                      const std::size_t before = d.count();
                                      read_object(v, p, pipeline_keys(), c.pipeline, d);
                                      if (d.count() == before &&
                                          c.pipeline.resume_watermark >= c.pipeline.pause_watermark)
                                          d.add(child_path(p, "resume_watermark"),
                                                "must be less than pause_watermark (" +
                                                    format_number(c.pipeline.pause_watermark) + "), got " +
                                                    format_number(c.pipeline.resume_watermark));
                                  }),
                    keys_of(pipeline_keys)),
        optional_section_key("postgres", "history, latest and offsets; leave out to run without PostgreSQL",
                             &S::postgres, postgres_keys),
        optional_section_key("redis", "hot latest values; leave out to run without Redis", &S::redis, redis_keys),
        section_key("http", "the HTTP API", &S::http, http_keys),
        section_key("memory", "the in-memory index of latest values", &S::memory, memory_keys),
        section_key("log", "logging", &S::log, log_keys),
        section_key("generator", "synthetic events for a demo", &S::generator, generator_keys),
        section_key("activity", "the activity log: who did what, kept in PostgreSQL", &S::activity, activity_keys),
        section_key("quality", "data quality statistics per feature set and field, and expectations' windows",
                    &S::quality, quality_keys),
        section_key("training", "point-in-time training sets: POST /v1/training-sets and sluice export", &S::training,
                    training_keys),
        object_list_key("feature_services", "Feast feature services: named lists of features", &S::feature_services,
                        feature_service_keys),
        object_list_key("push_sources", "Feast push sources: POST /push writes their rows to feature sets",
                        &S::push_sources, push_source_keys),
    };
    return keys;
}

}  // namespace sluice::config_detail
