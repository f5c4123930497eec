// Canonical specs, the compatible/breaking rules, and plans (see sluice/config/definition.hpp).
// Every rule about what may change in place is in classify_changes; nothing else decides it.

#include "sluice/config/definition.hpp"

#include <algorithm>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "feature_set_reader.hpp"
#include "sluice/core/sha256.hpp"
#include "sluice/core/timestamp.hpp"
#include "sluice/core/value_codec.hpp"

namespace sluice {
namespace {

using cjson = nlohmann::json;  // std::map objects: keys sorted, which the canonical form needs

const char* type_name(field_type t) {
    for (const auto& [name, type] : config_detail::type_names())
        if (type == t) return name.c_str();
    return "string";
}


cjson value_json(field_type t, const value& v) {
    if (std::holds_alternative<std::monostate>(v)) return nullptr;
    return cjson::parse(value_to_json_text(t, v), nullptr, false);
}

field_type type_of(const feature_set_config& set, std::size_t field_index) {
    return field_index < set.fields.size() ? set.fields[field_index].type : field_type::string;
}

cjson transform_json(const feature_set_config& set, const transform_config& t) {
    cjson j;
    for (const auto& o : config_detail::transform_ops())
        if (o.op == t.op) j["op"] = o.name;
    const field_type type = type_of(set, t.field_index);
    switch (t.op) {
        case transform_op::rename:
            j["from"] = t.from;
            j["to"] = t.to;
            return j;
        case transform_op::cast: j["to"] = type_name(t.cast_to); break;
        case transform_op::set_default: j["value"] = value_json(type, t.default_value); break;
        case transform_op::clamp:
            if (!std::holds_alternative<std::monostate>(t.clamp_min)) j["min"] = value_json(type, t.clamp_min);
            if (!std::holds_alternative<std::monostate>(t.clamp_max)) j["max"] = value_json(type, t.clamp_max);
            break;
        case transform_op::hash: j["salt"] = t.salt; break;
        case transform_op::filter:
            for (const auto& c : config_detail::conditions) {
                if (c.op != t.condition) continue;
                if (c.op == filter_op::in || c.op == filter_op::not_in) {
                    cjson list = cjson::array();
                    for (const auto& v : t.operands) list.push_back(value_json(type, v));
                    j[c.name] = list;
                } else {
                    j[c.name] = t.operands.empty() ? cjson(nullptr) : value_json(type, t.operands.front());
                }
            }
            break;
        default: break;
    }
    j["field"] = t.field;
    return j;
}

cjson spec_json(const feature_set_config& set) {
    cjson j;
    j["name"] = set.name;
    j["version"] = set.version;
    j["topic"] = set.topic;
    j["key"] = set.key_field;
    j["event_time"] = set.event_time_field;
    j["event_time_fallback"] = set.event_time_fallback == time_fallback::none ? "none" : "kafka_timestamp";
    j["ttl"] = format_duration(set.ttl_ms);
    j["allowed_lateness"] = format_duration(set.allowed_lateness_ms);
    cjson fields = cjson::object();
    for (const auto& f : set.fields) {
        cjson fj;
        fj["type"] = type_name(f.type);
        fj["required"] = f.required;
        fj["default"] = value_json(f.type, f.default_value);
        if (f.min) fj["min"] = *f.min;
        if (f.max) fj["max"] = *f.max;
        fj["source"] = f.source.empty() ? "/" + f.name : f.source;
        if (!f.allowed.empty()) {
            cjson allowed = cjson::array();
            for (const auto& v : f.allowed) allowed.push_back(value_json(f.type, v));
            fj["allowed"] = allowed;
        }
        fields[f.name] = fj;
    }
    j["fields"] = fields;
    cjson aggs = cjson::array();
    for (const auto& a : set.aggregations)
        aggs.push_back({{"name", a.name}, {"field", a.field}, {"op", to_string(a.op)}, {"window", format_duration(a.window_ms)}});
    j["aggregations"] = aggs;
    cjson transforms = cjson::array();
    for (const auto& t : set.transforms) transforms.push_back(transform_json(set, t));
    j["transforms"] = transforms;
    if (set.dedup.enabled())
        j["dedup"] = {{"field", set.dedup.field}, {"window", format_duration(set.dedup.window_ms)}, {"max_ids", set.dedup.max_ids}};
    // Only when there are some: specs recorded before expectations existed keep their hash.
    if (!set.expectations.empty()) {
        cjson expects = cjson::array();
        for (const auto& e : set.expectations) {
            cjson x = {{"expect", to_string(e.kind)}, {"window", format_duration(e.window_ms)},
                       {"severity", e.severity == expectation_severity::quarantine ? "quarantine" : "warn"}};
            if (!e.field.empty()) x["field"] = e.field;
            if (e.min) x["min"] = *e.min;
            if (e.max) {
                if (e.kind == expectation_kind::freshness)
                    x["max"] = format_duration(static_cast<std::int64_t>(*e.max));
                else
                    x["max"] = *e.max;
            }
            if (e.kind == expectation_kind::allowed) {
                cjson values = cjson::array();
                for (const auto& v : e.values) values.push_back(value_json(type_of(set, e.field_index), v));
                x["values"] = values;
            }
            if (e.kind == expectation_kind::range || e.kind == expectation_kind::allowed) x["max_outside"] = e.max_outside;
            expects.push_back(std::move(x));
        }
        j["expectations"] = expects;
    }
    return j;
}

std::string text_of(const cjson& j) { return j.is_string() ? j.get<std::string>() : j.dump(); }

// A member of a recorded spec, or null when it has none (a spec from the registry is data: it may
// lack anything).
const cjson& member(const cjson& j, const char* key) {
    static const cjson none;
    if (!j.is_object()) return none;
    const auto it = j.find(key);
    return it == j.end() ? none : *it;
}

std::string from_to(const cjson& a, const cjson& b) { return text_of(a) + " -> " + text_of(b); }

// The members of a JSON array as a set of their texts.
std::set<std::string> texts(const cjson& list) {
    std::set<std::string> out;
    if (list.is_array())
        for (const auto& v : list) out.insert(v.dump());
    return out;
}

void classify_field(const std::string& name, const cjson& a, const cjson& b, std::vector<spec_change>& out) {
    const std::string subject = "field " + name;
    if (a.value("type", "") != b.value("type", ""))
        out.push_back({subject, "type " + from_to(member(a, "type"), member(b, "type")), true,
                       "history, latest and every reader hold the old type"});
    const bool was_required = a.value("required", false), now_required = b.value("required", false);
    if (was_required != now_required)
        out.push_back({subject, now_required ? "now required" : "no longer required", now_required,
                       now_required ? "history holds rows without it" : "applied in place: events may leave it out"});
    if (a.value("default", cjson()) != b.value("default", cjson()))
        out.push_back({subject, "default " + from_to(a.value("default", cjson()), b.value("default", cjson())), false,
                       "applied in place: events from now on"});
    for (const char* bound : {"min", "max"})
        if (a.value(bound, cjson()) != b.value(bound, cjson()))
            out.push_back({subject, std::string(bound) + " " + from_to(a.value(bound, cjson()), b.value(bound, cjson())),
                           false, "applied in place: a limit on events from now on"});
    if (a.value("source", "") != b.value("source", ""))
        out.push_back({subject, "source " + from_to(member(a, "source"), member(b, "source")), false,
                       "applied in place: events from now on"});
    // No list is any value: going to a list, or dropping a value from one, rejects what history holds.
    const cjson none;
    const cjson& was = a.contains("allowed") ? a["allowed"] : none;
    const cjson& now = b.contains("allowed") ? b["allowed"] : none;
    if (was != now) {
        const auto old_values = texts(was), new_values = texts(now);
        std::vector<std::string> removed;
        for (const auto& v : old_values)
            if (!new_values.count(v)) removed.push_back(v);
        const bool narrowed = now.is_array() && (!was.is_array() || !removed.empty());
        std::string change = "allowed " + (was.is_array() ? was.dump() : std::string("any")) + " -> " +
                             (now.is_array() ? now.dump() : std::string("any"));
        out.push_back({subject, change, narrowed,
                       narrowed ? "history may hold values the new definition rejects"
                                : "applied in place: more values accepted"});
    }
}

void classify_fields(const cjson& a, const cjson& b, std::vector<spec_change>& out) {
    const cjson empty = cjson::object();
    const cjson& old_fields = a.contains("fields") ? a["fields"] : empty;
    const cjson& new_fields = b.contains("fields") ? b["fields"] : empty;
    for (auto it = old_fields.begin(); it != old_fields.end(); ++it)
        if (!new_fields.contains(it.key()))
            out.push_back({"field " + it.key(), "removed", true, "history, latest and readers have it"});
    for (auto it = new_fields.begin(); it != new_fields.end(); ++it) {
        if (!old_fields.contains(it.key())) {
            const bool required = it.value().value("required", false);
            out.push_back({"field " + it.key(), "added (" + it.value().value("type", "") + ")", required,
                           required ? "a required field: history holds rows without it"
                                    : "applied in place: a column added, older rows null"});
            continue;
        }
        classify_field(it.key(), old_fields[it.key()], it.value(), out);
    }
}

std::map<std::string, cjson> by_name(const cjson& list) {
    std::map<std::string, cjson> out;
    if (list.is_array())
        for (const auto& a : list) out[a.value("name", "")] = a;
    return out;
}

void classify_aggregations(const cjson& a, const cjson& b, std::vector<spec_change>& out) {
    const auto old_aggs = by_name(a.value("aggregations", cjson::array()));
    const auto new_aggs = by_name(b.value("aggregations", cjson::array()));
    for (const auto& [name, agg] : old_aggs)
        if (!new_aggs.count(name)) out.push_back({"aggregation " + name, "removed", true, "readers have it"});
    for (const auto& [name, agg] : new_aggs) {
        const auto it = old_aggs.find(name);
        if (it == old_aggs.end()) {
            out.push_back({"aggregation " + name,
                           "added (" + agg.value("op", "") + " of " + agg.value("field", "") + " over " +
                               agg.value("window", "") + ")",
                           false, "applied in place: a column added, computed from history"});
            continue;
        }
        for (const char* field : {"op", "window", "field"})
            if (member(it->second, field) != member(agg, field))
                out.push_back({"aggregation " + name,
                               std::string(field) + " " + from_to(member(it->second, field), member(agg, field)), true,
                               "its values so far mean something else"});
    }
}

std::vector<spec_change> classify_objects(const cjson& a, const cjson& b);

}  // namespace

std::string canonical_spec(const feature_set_config& set) { return spec_json(set).dump(); }

std::string spec_hash(const std::string& spec) { return sha256_hex(spec); }

std::vector<spec_change> classify_changes(const std::string& old_spec, const std::string& new_spec) {
    const cjson a = cjson::parse(old_spec, nullptr, false);
    const cjson b = cjson::parse(new_spec, nullptr, false);
    if (!a.is_object() || !b.is_object())
        return {{"spec", "unreadable", true, "a recorded spec is not a JSON object"}};
    // A member of the wrong type (a spec written by hand into the registry, or by a later version)
    // makes the whole spec unreadable rather than half-compared.
    try {
        return classify_objects(a, b);
    } catch (const nlohmann::json::exception& e) {
        return {{"spec", "unreadable", true, std::string("a recorded spec has a member of the wrong shape: ") + e.what()}};
    }
}

namespace {

std::vector<spec_change> classify_objects(const cjson& a, const cjson& b) {
    std::vector<spec_change> out;
    // What a row is: which stream, which entity, which moment.
    static const std::pair<const char*, const char*> identity[] = {
        {"key", "history and latest are keyed by the old key"},
        {"event_time", "history is ordered and windowed by the old event time"},
    };
    for (const auto& [key, why] : identity)
        if (member(a, key) != member(b, key)) out.push_back({key, from_to(member(a, key), member(b, key)), true, why});
    classify_fields(a, b, out);
    classify_aggregations(a, b, out);
    // How events are treated from now on: none of it touches what is stored.
    static const std::pair<const char*, const char*> in_place[] = {
        // Another topic of the same events (a topic renamed, a cluster moved): read from its start
        // under its own offsets; history keeps the old topic's rows, latest keeps the newest.
        {"topic", "applied in place: the new topic is read from its start, history keeps the old one's rows"},
        {"ttl", "applied in place: how long latest values are served"},
        {"allowed_lateness", "applied in place: late events from now on"},
        {"event_time_fallback", "applied in place: events from now on"},
        {"transforms", "applied in place: events from now on"},
        {"dedup", "applied in place: events from now on"},
        {"expectations", "applied in place: windows closed from now on"},
    };
    for (const auto& [key, why] : in_place) {
        const cjson& was = member(a, key);
        const cjson& now = member(b, key);
        if (was != now) {
            const bool long_text = was.dump().size() + now.dump().size() > 60;
            out.push_back({key, long_text ? std::string("changed") : from_to(was, now), false, why});
        }
    }
    return out;
}

}  // namespace

const char* to_string(definition_state s) {
    switch (s) {
        case definition_state::backfilling: return "backfilling";
        case definition_state::live: return "live";
        case definition_state::retired: return "retired";
        case definition_state::dropped: return "dropped";
    }
    return "live";
}

bool parse_definition_state(const std::string& text, definition_state& out) {
    for (auto s : {definition_state::backfilling, definition_state::live, definition_state::retired,
                   definition_state::dropped})
        if (text == to_string(s)) {
            out = s;
            return true;
        }
    return false;
}

const char* to_string(plan_action a) {
    switch (a) {
        case plan_action::unchanged: return "unchanged";
        case plan_action::added: return "added";
        case plan_action::changed: return "changed";
        case plan_action::new_version: return "new version";
        case plan_action::revived: return "revived";
        case plan_action::retired: return "retired";
    }
    return "unchanged";
}

bool set_plan::breaking() const {
    return std::any_of(changes.begin(), changes.end(), [](const spec_change& c) { return c.breaking; });
}

bool definition_plan::breaking() const {
    return std::any_of(sets.begin(), sets.end(), [](const set_plan& s) { return s.breaking(); });
}

std::vector<std::string> definition_plan::breaking_reasons() const {
    std::vector<std::string> out;
    for (const auto& s : sets)
        for (const auto& c : s.changes)
            if (c.breaking)
                out.push_back("feature set " + s.set + (s.version == 1 ? "" : "@" + std::to_string(s.version)) + ": " +
                              c.subject + ": " + c.change + " (" + c.why + ")");
    return out;
}

std::string definition_plan::text() const {
    std::string out = "environment " + environment + "\n";
    for (const auto& s : sets) {
        out += "  " + s.set + " version " + std::to_string(s.version) + ": " + to_string(s.action);
        if (!s.note.empty()) out += " (" + s.note + ")";
        out += "\n";
        for (const auto& c : s.changes)
            out += std::string("    ") + (c.breaking ? "BREAKING   " : "compatible ") + c.subject + ": " + c.change +
                   " -- " + c.why + "\n";
    }
    if (breaking())
        out += "breaking changes need a new version: raise the set's \"version\" (keep the old version's entry beside "
               "it to keep serving it while the new one backfills)\n";
    else
        out += "can be applied as it is\n";
    return out;
}

std::string definition_plan::json() const {
    cjson j;
    j["environment"] = environment;
    j["breaking"] = breaking();
    cjson list = cjson::array();
    for (const auto& s : sets) {
        cjson changes = cjson::array();
        for (const auto& c : s.changes)
            changes.push_back({{"subject", c.subject}, {"change", c.change}, {"breaking", c.breaking}, {"why", c.why}});
        list.push_back({{"set", s.set},
                        {"version", s.version},
                        {"action", to_string(s.action)},
                        {"note", s.note},
                        {"breaking", s.breaking()},
                        {"changes", changes}});
    }
    j["sets"] = list;
    return j.dump(2) + "\n";
}

definition_plan plan_definitions(const config& cfg, const std::vector<registered_definition>& registry) {
    definition_plan plan;
    plan.environment = cfg.environment;
    // The newest revision of each (set, version).
    std::map<std::pair<std::string, std::int64_t>, const registered_definition*> newest;
    for (const auto& d : registry) {
        auto& slot = newest[{d.set, d.version}];
        if (!slot || slot->revision < d.revision) slot = &d;
    }
    std::set<std::pair<std::string, std::int64_t>> in_config;
    for (const auto& set : cfg.feature_sets) {
        in_config.insert({set.name, set.version});
        set_plan p;
        p.set = set.name;
        p.version = set.version;
        const std::string spec = canonical_spec(set);
        const auto it = newest.find({set.name, set.version});
        if (it == newest.end()) {
            bool known = false;
            for (const auto& [k, d] : newest) known = known || k.first == set.name;
            p.action = known ? plan_action::new_version : plan_action::added;
            p.note = known ? "new tables and Redis keys, backfilled from topic " + set.topic + ", then switched to"
                           : "tables created, consumed from topic " + set.topic;
        } else {
            const auto& d = *it->second;
            p.changes = classify_changes(d.spec, spec);
            if (d.state == definition_state::dropped) {
                p.action = plan_action::added;
                p.note = "dropped before: tables created again, consumed from topic " + set.topic;
                p.changes.clear();
            } else if (d.state == definition_state::retired) {
                p.action = plan_action::revived;
                p.note = "retired version served again from its kept tables";
            } else {
                p.action = p.changes.empty() ? plan_action::unchanged : plan_action::changed;
            }
            if (p.action == plan_action::changed)
                p.note = p.breaking() ? "refused: a breaking change at the same version"
                                      : "revision " + std::to_string(d.revision + 1) + ", applied in place";
        }
        plan.sets.push_back(std::move(p));
    }
    for (const auto& [k, d] : newest) {
        if (in_config.count(k) || d->state == definition_state::retired || d->state == definition_state::dropped)
            continue;
        set_plan p;
        p.set = k.first;
        p.version = k.second;
        p.action = plan_action::retired;
        p.note = "served no more, tables kept until sluice drop";
        plan.sets.push_back(std::move(p));
    }
    return plan;
}

}  // namespace sluice
