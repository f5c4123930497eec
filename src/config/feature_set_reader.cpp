// Reading feature sets (see feature_set_reader.hpp): fields with their defaults and allowed
// values, transforms and the order they run in, aggregations, dedup, and the names and topics
// that must be unique across sets. Every problem is reported with its JSON path; a reference to
// something already reported bad is not reported again.

#include "feature_set_reader.hpp"

#include <algorithm>
#include <iterator>
#include <map>
#include <optional>
#include <variant>

#include "key_spec.hpp"
#include "key_tables.hpp"
#include "sluice/core/timestamp.hpp"  // the timestamp rule, shared with events
#include "value_checks.hpp"

namespace sluice::config_detail {
namespace {

// ---------------------------------------------------------------------------------------------
// Fields

// Column names every feature set table already has (key, event time, ingestion and source
// columns); a field may not shadow them.
const std::vector<std::string>& reserved_columns() {
    static const std::vector<std::string> names = {"key",        "event_time", "ingested_at", "updated_at",
                                                   "src_topic", "src_partition", "src_offset"};
    return names;
}

// Converts a default to the field's type; returns the complaint when it does not fit.
std::optional<std::string> coerce_default(field_type t, const json& j, value& out) {
    const auto got = [&] {
        std::string text = compact(j);
        if (text.size() > 60) text = text.substr(0, 57) + "...";
        return text;
    };
    if (j.is_null()) {
        out = std::monostate{};
        return std::nullopt;
    }
    switch (t) {
        case field_type::int64:
            if (fits_int64(j)) {
                out = j.get<std::int64_t>();
                return std::nullopt;
            }
            return "must be a 64-bit integer (the field is int), got " + got();
        case field_type::float64:
            if (j.is_number()) {
                out = j.get<double>();
                return std::nullopt;
            }
            return "must be a number (the field is double), got " + got();
        case field_type::boolean:
            if (j.is_boolean()) {
                out = j.get<bool>();
                return std::nullopt;
            }
            return "must be true or false (the field is bool), got " + got();
        case field_type::string:
            if (j.is_string()) {
                out = j.get<std::string>();
                return std::nullopt;
            }
            return "must be a string (the field is string), got " + got();
        case field_type::timestamp: {
            // The same rule as event times (record_parser.hpp): numbers below 10^11 are seconds.
            std::optional<std::int64_t> ms;
            if (j.is_string())
                ms = parse_timestamp_text(j.get_ref<const std::string&>());
            else if (fits_int64(j))
                ms = epoch_number_to_ms(j.get<std::int64_t>());
            else if (j.is_number_float())
                ms = epoch_number_to_ms(j.get<double>());
            if (ms) {
                out = *ms;
                return std::nullopt;
            }
            return "must be an RFC 3339 time or epoch seconds or milliseconds in years 1970..9999 (the field is "
                   "timestamp), got " +
                   got();
        }
        case field_type::json:
            out = compact(j);
            return std::nullopt;
    }
    return "unsupported field type";
}

// The checks that need the whole field: min/max against the type, and the default.
constexpr std::size_t max_allowed_values = 1024;

// "allowed": a non-empty list of values of the field's type (string and int fields only).
void read_allowed(field_draft& f, const std::string& path, diagnostics& d) {
    field_config& c = f.cfg;
    const std::string p = child_path(path, "allowed");
    const json& list = *f.allowed_json;
    if (c.type != field_type::string && c.type != field_type::int64) {
        d.add(p, std::string("only string and int fields can have allowed values (the field is ") + to_string(c.type) +
                     ")");
        return;
    }
    if (list.empty() || list.size() > max_allowed_values) {
        d.add(p, "must list between 1 and " + std::to_string(max_allowed_values) + " values, got " +
                     std::to_string(list.size()));
        return;
    }
    for (std::size_t i = 0; i < list.size(); ++i) {
        const json& item = list[i];
        if (c.type == field_type::string ? !item.is_string() : !fits_int64(item)) {
            d.add(index_path(p, i),
                  std::string(c.type == field_type::string ? "must be a string" : "must be a 64-bit integer") +
                      " (the field is " + to_string(c.type) + "), got " + compact(item));
            continue;
        }
        c.allowed.push_back(c.type == field_type::string ? value{item.get<std::string>()}
                                                         : value{item.get<std::int64_t>()});
    }
}

void finish_field(field_draft& f, const std::string& path, diagnostics& d) {
    if (f.cfg.source.empty()) f.cfg.source = "/" + f.cfg.name;  // names are identifiers: nothing to escape
    if (!f.type_ok) return;  // missing or bad type is reported already; nothing else can be judged
    field_config& c = f.cfg;
    if (f.allowed_json) {
        read_allowed(f, path, d);
        if (f.default_json && !f.default_json->is_null() && !c.allowed.empty()) {
            value def;
            if (!coerce_default(c.type, *f.default_json, def) &&
                std::find(c.allowed.begin(), c.allowed.end(), def) == c.allowed.end())
                d.add(child_path(path, "default"),
                      "must be one of the allowed values, got " + compact(*f.default_json));
        }
    }
    const bool numeric = c.type == field_type::int64 || c.type == field_type::float64;
    if (!numeric) {
        const std::string only = std::string("only int and double fields can have ");
        if (c.min) d.add(child_path(path, "min"), only + "min (the field is " + to_string(c.type) + ")");
        if (c.max) d.add(child_path(path, "max"), only + "max (the field is " + to_string(c.type) + ")");
        c.min.reset();
        c.max.reset();
    } else if (c.min && c.max && *c.min > *c.max) {
        d.add(child_path(path, "min"),
              "must not be greater than max (" + format_number(*c.max) + "), got " + format_number(*c.min));
        return;
    }
    if (!f.default_json) return;
    const std::string default_path = child_path(path, "default");
    if (auto complaint = coerce_default(c.type, *f.default_json, c.default_value)) {
        d.add(default_path, std::move(*complaint));
        c.default_value = std::monostate{};
        return;
    }
    if (!numeric || std::holds_alternative<std::monostate>(c.default_value)) return;
    const double x = std::holds_alternative<double>(c.default_value)
                         ? std::get<double>(c.default_value)
                         : static_cast<double>(std::get<std::int64_t>(c.default_value));
    const std::string got = compact(*f.default_json);
    if (c.min && c.max && (x < *c.min || x > *c.max))
        d.add(default_path, "must be between min and max (" + format_number(*c.min) + " and " +
                                format_number(*c.max) + "), got " + got);
    else if (c.min && x < *c.min)
        d.add(default_path, "must be >= min (" + format_number(*c.min) + "), got " + got);
    else if (c.max && x > *c.max)
        d.add(default_path, "must be <= max (" + format_number(*c.max) + "), got " + got);
}

// ---------------------------------------------------------------------------------------------
// References to fields

// Is `name` a key of the set's "fields" object in the file? A field that is there but not in
// fs.fields had a bad name or type, which is reported already: a reference to it is not a
// second error.
bool declared_in_file(const json& set, const std::string& name) {
    const auto it = set.find("fields");
    return it != set.end() && it->is_object() && it->contains(name);
}

std::vector<std::string> field_names(const feature_set_config& fs) {
    std::vector<std::string> names;
    for (const auto& f : fs.fields) names.push_back(f.name);
    return names;
}

// Index of the declared field called `name`, or -1.
int find_field(const feature_set_config& fs, const std::string& name) {
    for (std::size_t i = 0; i < fs.fields.size(); ++i)
        if (fs.fields[i].name == name) return static_cast<int>(i);
    return -1;
}

// "not a declared field of this set (did you mean ...?)"; nothing when it is reported already.
std::optional<std::string> unknown_field(const feature_set_config& fs, const json& set, const std::string& name) {
    if (declared_in_file(set, name)) return std::nullopt;
    std::string msg = quote(name) + " is not a declared field of this feature set";
    if (auto hint = suggest(name, field_names(fs))) msg += " (did you mean \"" + *hint + "\"?)";
    return msg;
}

// ---------------------------------------------------------------------------------------------
// Transforms

bool is_condition(const std::string& key) {
    return std::any_of(std::begin(conditions), std::end(conditions), [&](const auto& c) { return key == c.name; });
}

const op_name& op_info(transform_op op) {
    for (const auto& o : transform_ops())
        if (o.op == op) return o;
    return transform_ops().front();
}

// The names a rename may usefully write: what a field, the key or the event time reads at the top
// level of the event.
std::vector<std::string> top_level_reads(const feature_set_config& fs) {
    std::vector<std::string> names;
    const auto add = [&](const std::string& member_or_pointer) {
        if (member_or_pointer.empty()) return;
        if (member_or_pointer[0] != '/') {
            names.push_back(member_or_pointer);
        } else if (auto t = pointer_tokens(member_or_pointer); t && t->size() == 1) {
            names.push_back(t->front());
        }
    };
    for (const auto& f : fs.fields) add(f.source.empty() ? "/" + f.name : f.source);
    add(fs.key_field);
    add(fs.event_time_field);
    return names;
}

// Converts a filter operand, a clamp bound or a default to the field's type (null allowed where
// `null_ok`); reports at p and returns nothing when it does not fit.
std::optional<value> typed_operand(field_type t, const json& j, bool null_ok, const std::string& p, diagnostics& d) {
    if (j.is_null() && !null_ok) {
        d.add(p, "must not be null");
        return std::nullopt;
    }
    value out;
    if (auto complaint = coerce_default(t, j, out)) {
        d.add(p, std::move(*complaint));
        return std::nullopt;
    }
    return out;
}

// A number bound for an int, double or timestamp field (clamp, gt/gte/lt/lte): an int field
// takes a double for a comparison but only an integer for a clamp.
std::optional<value> typed_bound(field_type t, const json& j, bool integer_only, const std::string& p, diagnostics& d) {
    if (t == field_type::timestamp) return typed_operand(t, j, false, p, d);
    if (!j.is_number()) {
        d.add(p, expected("number", j));
        return std::nullopt;
    }
    if (t == field_type::int64 && fits_int64(j)) return value{j.get<std::int64_t>()};
    if (t == field_type::int64 && (integer_only || j.is_number_integer())) {
        d.add(p, "must be a 64-bit integer (the field is int), got " + compact(j));
        return std::nullopt;
    }
    return value{j.get<double>()};
}

// The index of the declared field `name`, or nothing after reporting at `path` why it is not one.
std::optional<std::size_t> resolve_field(const feature_set_config& fs, const json& set, const std::string& name,
                                         const std::string& path, diagnostics& d) {
    const int index = find_field(fs, name);
    if (index >= 0) return static_cast<std::size_t>(index);
    if (auto complaint = unknown_field(fs, set, name)) d.add(path, std::move(*complaint));
    return std::nullopt;
}

void check_transform(transform_draft& t, std::size_t i, feature_set_config& fs, const json& set, const json& elem,
                     const std::string& p, diagnostics& d) {
    transform_config& c = t.cfg;
    const op_name& info = op_info(c.op);
    // Keys this op does not take, and the ones it needs.
    for (const auto& key : t.keys)
        if (std::find(info.keys.begin(), info.keys.end(), key) == info.keys.end())
            d.add(child_path(p, key),
                  "not a key of a " + t.op_name + " transform (it takes " + join(info.keys, ", ") + ")");
    const auto has = [&](const char* key) { return std::find(t.keys.begin(), t.keys.end(), key) != t.keys.end(); };
    // A key that is there with a bad value is reported already: not also "missing".
    const auto need = [&](const char* key) {
        if (has(key)) return true;
        if (!elem.contains(key))
            d.add(child_path(p, key), "required key is missing (a " + t.op_name + " transform needs it)");
        return false;
    };

    if (c.op == transform_op::rename) {
        const bool ok = need("from") & need("to");
        if (!ok) return;
        if (c.from.empty()) d.add(child_path(p, "from"), "must not be empty");
        if (c.to.empty()) d.add(child_path(p, "to"), "must not be empty");
        if (c.from.empty() || c.to.empty()) return;
        if (c.from == c.to) {
            d.add(child_path(p, "to"), "is the same as from");
            return;
        }
        // What a field, the key or the event time reads, or a later rename renames further.
        auto reads = top_level_reads(fs);
        const json& all = set.at("transforms");
        for (std::size_t j = i + 1; j < all.size(); ++j)
            if (all[j].is_object() && all[j].value("op", json()) == "rename" &&
                all[j].value("from", json()).is_string())
                reads.push_back(all[j]["from"].get<std::string>());
        if (std::find(reads.begin(), reads.end(), c.to) == reads.end()) {
            std::string msg = "no field, key or event time reads " + quote(c.to) +
                              " (a rename only matters into a member that is read)";
            if (auto hint = suggest(c.to, reads)) msg += " (did you mean \"" + *hint + "\"?)";
            d.add(child_path(p, "to"), std::move(msg));
        }
        return;
    }

    if (!need("field") || c.field.empty()) {
        if (has("field") && c.field.empty()) d.add(child_path(p, "field"), "must not be empty");
        return;
    }
    const auto index = resolve_field(fs, set, c.field, child_path(p, "field"), d);
    if (!index) return;
    c.field_index = *index;
    const field_config& f = fs.fields[c.field_index];
    const std::string type = to_string(f.type);
    const auto wrong_type = [&](const std::string& needs) {
        d.add(child_path(p, "field"), t.op_name + " needs " + needs + "; " + quote(f.name) + " is " + type);
    };

    switch (c.op) {
        case transform_op::cast: {
            if (!need("to")) return;
            const auto& types = type_names();
            const auto it = std::find_if(types.begin(), types.end(), [&](const auto& n) { return n.first == c.to; });
            if (it == types.end()) {
                std::vector<std::string> names;
                for (const auto& n : types) names.push_back(n.first);
                std::string text = c.to;
                d.add(child_path(p, "to"), *one_of(names)(text));
                return;
            }
            c.cast_to = it->second;
            if (c.cast_to != f.type)
                d.add(child_path(p, "to"), "cannot cast " + quote(f.name) + " (" + type + ") to " + c.to +
                                               ": a field always holds its declared type, and a cast only reads the "
                                               "raw value leniently into it; use \"to\": \"" +
                                               type + "\", or declare the field as " + c.to);
            return;
        }
        case transform_op::set_default: {
            if (!need("value")) return;
            if (f.required)
                d.add(child_path(p, "field"), quote(f.name) +
                                                  " is required: an event without it is a dead letter, "
                                                  "so a default never applies");
            if (auto v = typed_operand(f.type, *t.value, false, child_path(p, "value"), d)) c.default_value = *v;
            return;
        }
        case transform_op::clamp: {
            if (f.type != field_type::int64 && f.type != field_type::float64)
                return wrong_type("an int or double field");
            if (!t.min && !t.max) {
                d.add(p, "a clamp needs min, max or both");
                return;
            }
            if (t.min)
                if (auto v = typed_bound(f.type, *t.min, true, child_path(p, "min"), d)) c.clamp_min = *v;
            if (t.max)
                if (auto v = typed_bound(f.type, *t.max, true, child_path(p, "max"), d)) c.clamp_max = *v;
            if (t.min && t.max && t.min->get<double>() > t.max->get<double>())
                d.add(child_path(p, "min"),
                      "must not be greater than max (" + compact(*t.max) + "), got " + compact(*t.min));
            return;
        }
        case transform_op::lower:
        case transform_op::upper:
        case transform_op::trim:
        case transform_op::hash:
            if (f.type != field_type::string) wrong_type("a string field");
            return;
        case transform_op::drop:
            return;
        case transform_op::filter: {
            std::vector<std::string> given;  // every condition key in the file, good or bad
            for (auto it = elem.begin(); it != elem.end(); ++it)
                if (is_condition(it.key())) given.push_back(it.key());
            if (given.empty()) {
                d.add(p, "a filter needs one condition: equals, not_equals, in, not_in, gt, gte, lt or lte");
                return;
            }
            for (std::size_t k = 1; k < given.size(); ++k)
                d.add(child_path(p, given[k]), "a filter has one condition; this one already has " + quote(given[0]));
            if (f.type == field_type::json) return wrong_type("a field that is not json");
            if (!t.operand || t.condition != given[0]) return;  // its value was reported already
            const std::string op_path = child_path(p, t.condition);
            switch (c.condition) {
                case filter_op::equals:
                case filter_op::not_equals:
                    if (auto v = typed_operand(f.type, *t.operand, true, op_path, d)) c.operands = {*v};
                    return;
                case filter_op::in:
                case filter_op::not_in:
                    if (t.operand->empty()) {
                        d.add(op_path, "must list at least one value");
                        return;
                    }
                    for (std::size_t k = 0; k < t.operand->size(); ++k)
                        if (auto v = typed_operand(f.type, (*t.operand)[k], true, index_path(op_path, k), d))
                            c.operands.push_back(*v);
                    return;
                default:
                    if (f.type != field_type::int64 && f.type != field_type::float64 && f.type != field_type::timestamp)
                        return wrong_type("an int, double or timestamp field for " + t.condition);
                    if (auto v = typed_bound(f.type, *t.operand, false, op_path, d)) c.operands = {*v};
                    return;
            }
        }
        case transform_op::rename:
            return;
    }
}

// The order the file shows is the order they run in (record_parser.hpp): renames first, filters
// last, a cast first among its field's transforms, nothing after a drop of the same field.
void check_transform_order(const std::vector<transform_draft>& drafts, const std::string& list_path, diagnostics& d) {
    std::optional<std::size_t> first_other, first_filter;
    std::map<std::string, std::size_t> first_of_field, drop_of_field;
    for (std::size_t i = 0; i < drafts.size(); ++i) {
        const auto& t = drafts[i];
        if (!t.op_ok) continue;
        const std::string op_path = child_path(index_path(list_path, i), "op");
        const transform_op op = t.cfg.op;
        if (op == transform_op::rename) {
            if (first_other)
                d.add(op_path,
                      "a rename must come before the other transforms (it renames members of the raw "
                      "event, before anything reads them); move it before " +
                          index_path(list_path, *first_other));
            continue;
        }
        if (!first_other) first_other = i;
        if (op == transform_op::filter) {
            if (!first_filter) first_filter = i;
            continue;
        }
        if (first_filter)
            d.add(op_path, "must come before the filters (" + index_path(list_path, *first_filter) +
                               "): filters run after every other transform");
        const std::string& field = t.cfg.field;
        if (field.empty()) continue;
        if (const auto drop = drop_of_field.find(field); drop != drop_of_field.end()) {
            d.add(op_path, quote(field) + " is dropped by " + index_path(list_path, drop->second) +
                               "; a transform after the drop has no effect");
            continue;
        }
        if (op == transform_op::cast && first_of_field.count(field))
            d.add(op_path, "a cast must be the first transform of " + quote(field) + " (it reads the raw value); " +
                               index_path(list_path, first_of_field[field]) + " comes before it");
        first_of_field.emplace(field, i);
        if (op == transform_op::drop) drop_of_field.emplace(field, i);
    }
}

void finish_transforms(feature_set_config& fs, const json& set, const std::string& path, diagnostics& d) {
    fs.transforms.clear();
    const auto it = set.find("transforms");
    if (it == set.end() || !it->is_array() || it->size() > max_transforms) return;  // reported already
    const std::string list_path = child_path(path, "transforms");
    std::vector<transform_draft> drafts(it->size());
    for (std::size_t i = 0; i < it->size(); ++i)
        read_object((*it)[i], index_path(list_path, i), transform_keys(), drafts[i], d);
    for (std::size_t i = 0; i < drafts.size(); ++i) {
        if (drafts[i].op_ok) check_transform(drafts[i], i, fs, set, (*it)[i], index_path(list_path, i), d);
        fs.transforms.push_back(drafts[i].cfg);  // one per element: transforms[i] is the file's transforms[i]
    }
    check_transform_order(drafts, list_path, d);
}

// The transform that drops a field, if any.
std::optional<std::size_t> dropped_by(const feature_set_config& fs, const std::string& field) {
    for (std::size_t i = 0; i < fs.transforms.size(); ++i)
        if (fs.transforms[i].op == transform_op::drop && fs.transforms[i].field == field) return i;
    return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Dedup and aggregations, and the whole set

void finish_dedup(feature_set_config& fs, const json& set, const std::string& path, diagnostics& d) {
    dedup_config& dd = fs.dedup;
    if (dd.field.empty()) return;
    const std::string p = child_path(child_path(path, "dedup"), "field");
    const int index = find_field(fs, dd.field);
    if (index < 0) {
        if (auto complaint = unknown_field(fs, set, dd.field)) d.add(p, std::move(*complaint));
        return;
    }
    dd.field_index = static_cast<std::size_t>(index);
    const field_type t = fs.fields[dd.field_index].type;
    if (t != field_type::string && t != field_type::int64)
        d.add(p, "dedup needs a string or int field holding the event id; " + quote(dd.field) + " is " + to_string(t));
    else if (auto drop = dropped_by(fs, dd.field))
        d.add(p, quote(dd.field) + " is dropped by " + index_path(child_path(path, "transforms"), *drop) +
                     ": dedup reads the stored value");
}

// Aggregations refer to fields, which may come after them in the file: checked once the whole
// set has been read.
void finish_aggregations(feature_set_config& fs, const json& set, const std::string& path, diagnostics& d) {
    const std::string list_path = child_path(path, "aggregations");
    const auto& reserved = reserved_columns();
    for (std::size_t i = 0; i < fs.aggregations.size(); ++i) {
        aggregation_config& a = fs.aggregations[i];
        const std::string p = index_path(list_path, i);
        // An empty name or field was reported while reading (missing, or not an identifier).
        if (!a.name.empty()) {
            if (std::find(reserved.begin(), reserved.end(), a.name) != reserved.end()) {
                d.add(child_path(p, "name"),
                      quote(a.name) + " is a reserved column name (" + join(reserved, ", ") + "); choose another name");
            } else if (find_field(fs, a.name) >= 0 || declared_in_file(set, a.name)) {
                d.add(child_path(p, "name"), quote(a.name) +
                                                 " is already a field of this feature set; an "
                                                 "aggregation needs a name of its own");
            } else {
                for (std::size_t j = 0; j < i; ++j)
                    if (fs.aggregations[j].name == a.name) {
                        d.add(child_path(p, "name"), "duplicate aggregation name " + quote(a.name) + " (also " +
                                                         index_path(list_path, j) + ")");
                        break;
                    }
            }
        }
        if (a.field.empty()) continue;
        const int index = find_field(fs, a.field);
        if (index < 0) {
            if (auto complaint = unknown_field(fs, set, a.field)) d.add(child_path(p, "field"), std::move(*complaint));
            continue;
        }
        a.field_index = static_cast<std::size_t>(index);
        const field_type t = fs.fields[a.field_index].type;
        const bool numeric = t == field_type::int64 || t == field_type::float64;
        const bool any_type = a.op == agg_op::count || a.op == agg_op::last;
        if (!any_type && !numeric)
            d.add(child_path(p, "field"), std::string(to_string(a.op)) + " needs an int or double field; " +
                                              quote(a.field) + " is " + to_string(t) +
                                              " (count and last accept any field)");
        else if (auto drop = dropped_by(fs, a.field))
            d.add(child_path(p, "field"), quote(a.field) + " is dropped by " +
                                              index_path(child_path(path, "transforms"), *drop) +
                                              ": the aggregation would only see nulls");
    }
}

// ---------------------------------------------------------------------------------------------
// Expectations

// The keys each kind takes besides "expect", "window" and "severity".
const std::vector<std::string>& expectation_keys_of(expectation_kind k) {
    static const std::vector<std::string> with_field_max = {"field", "max"};
    static const std::vector<std::string> range = {"field", "min", "max", "max_outside"};
    static const std::vector<std::string> allowed = {"field", "values", "max_outside"};
    static const std::vector<std::string> bounds = {"field", "min", "max"};
    static const std::vector<std::string> records = {"min", "max"};
    static const std::vector<std::string> freshness = {"max"};
    switch (k) {
        case expectation_kind::null_rate: return with_field_max;
        case expectation_kind::range: return range;
        case expectation_kind::allowed: return allowed;
        case expectation_kind::mean: return bounds;
        case expectation_kind::distinct: return bounds;
        case expectation_kind::records: return records;
        case expectation_kind::freshness: return freshness;
        case expectation_kind::drift: return with_field_max;
    }
    return records;
}

// One expectation once its set's fields are known: its keys, field, bounds and values judged.
void check_expectation(expectation_draft& e, const feature_set_config& fs, const json& set, const std::string& p,
                       diagnostics& d) {
    expectation_config& c = e.cfg;
    const std::string kind_name = to_string(c.kind);
    const auto& takes = expectation_keys_of(c.kind);
    for (const auto& key : e.keys)
        if (key != "window" && key != "severity" && std::find(takes.begin(), takes.end(), key) == takes.end())
            d.add(child_path(p, key), quote(key) + " does not apply to expect " + quote(kind_name) + " (it takes " +
                                          join(takes, ", ") + ")");
    const bool needs_field = c.kind != expectation_kind::records && c.kind != expectation_kind::freshness;
    field_type type = field_type::string;
    if (needs_field) {
        if (c.field.empty()) {
            d.add(child_path(p, "field"), "is required for expect " + quote(kind_name));
            return;
        }
        const auto index = resolve_field(fs, set, c.field, child_path(p, "field"), d);
        if (!index) return;
        c.field_index = *index;
        type = fs.fields[c.field_index].type;
        const bool numeric = type == field_type::int64 || type == field_type::float64;
        if ((c.kind == expectation_kind::range || c.kind == expectation_kind::mean) && !numeric)
            d.add(child_path(p, "field"), "expect " + quote(kind_name) + " needs an int or double field; " + quote(c.field) +
                                              " is " + to_string(type));
        if (c.kind == expectation_kind::allowed && type != field_type::string && type != field_type::int64 &&
            type != field_type::boolean)
            d.add(child_path(p, "field"), "expect \"allowed\" needs a string, int or bool field; " + quote(c.field) +
                                              " is " + to_string(type));
        if (type == field_type::json && c.kind != expectation_kind::null_rate)
            d.add(child_path(p, "field"), "a json field can only have a null_rate expectation");
    }
    // Bounds: numbers, except freshness's maximum, a duration.
    const auto number = [&](const std::optional<json>& v, const char* key) -> std::optional<double> {
        if (!v) return std::nullopt;
        if (!v->is_number()) {
            d.add(child_path(p, key), "must be a number, got " + compact(*v));
            return std::nullopt;
        }
        return v->get<double>();
    };
    c.min = number(e.min, "min");
    if (c.kind == expectation_kind::freshness && e.max) {
        std::int64_t ms = 0;
        if (e.max->is_string() && parse_duration_ms(e.max->get<std::string>(), ms) && ms > 0)
            c.max = static_cast<double>(ms);
        else if (e.max->is_number() && e.max->get<double>() > 0)
            c.max = e.max->get<double>();
        else
            d.add(child_path(p, "max"), "must be a duration such as \"5m\" (or milliseconds), got " + compact(*e.max));
    } else {
        c.max = number(e.max, "max");
    }
    const bool has_bounds = c.min || c.max;
    switch (c.kind) {
        case expectation_kind::null_rate:
            if (!c.max || *c.max < 0 || *c.max > 1) d.add(child_path(p, "max"), "null_rate needs \"max\", a share between 0 and 1");
            break;
        case expectation_kind::drift:
            if (!c.max || *c.max <= 0) d.add(child_path(p, "max"), "drift needs \"max\", the highest PSI (e.g. 0.25)");
            break;
        case expectation_kind::freshness:
            if (!e.max) d.add(child_path(p, "max"), "freshness needs \"max\", a duration such as \"5m\"");
            break;
        case expectation_kind::allowed: break;
        default:
            if (!has_bounds) d.add(p, "expect " + quote(kind_name) + " needs \"min\", \"max\" or both");
    }
    if (c.min && c.max && *c.min > *c.max)
        d.add(child_path(p, "min"), "must not be greater than max (" + compact(*e.max) + ")");
    if (c.kind == expectation_kind::allowed) {
        if (!e.values || !e.values->is_array() || e.values->empty()) {
            d.add(child_path(p, "values"), "allowed needs \"values\", a non-empty list of the field's values");
        } else {
            for (std::size_t i = 0; i < e.values->size(); ++i) {
                const json& item = (*e.values)[i];
                if (type == field_type::string && item.is_string())
                    c.values.emplace_back(item.get<std::string>());
                else if (type == field_type::int64 && fits_int64(item))
                    c.values.emplace_back(item.get<std::int64_t>());
                else if (type == field_type::boolean && item.is_boolean())
                    c.values.emplace_back(item.get<bool>());
                else
                    d.add(index_path(child_path(p, "values"), i),
                          "must be a " + std::string(to_string(type)) + " (the field's type), got " + compact(item));
            }
        }
    }
    if (c.severity == expectation_severity::quarantine && c.kind != expectation_kind::range &&
        c.kind != expectation_kind::allowed)
        d.add(child_path(p, "severity"), "quarantine applies to one record at a time: only range and allowed take it");
}

void finish_expectations(feature_set_config& fs, const json& set, const std::string& path, diagnostics& d) {
    fs.expectations.clear();
    const auto it = set.find("expectations");
    if (it == set.end() || !it->is_array() || it->size() > max_expectations) return;  // reported already
    const std::string list_path = child_path(path, "expectations");
    for (std::size_t i = 0; i < it->size(); ++i) {
        expectation_draft e;
        read_object((*it)[i], index_path(list_path, i), expectation_keys(), e, d);
        if (e.kind_ok) check_expectation(e, fs, set, index_path(list_path, i), d);
        fs.expectations.push_back(e.cfg);
    }
}

// The checks that need the whole set, once every key of it has been read.
void finish_set(feature_set_config& fs, const json& set, const std::string& path, diagnostics& d) {
    finish_transforms(fs, set, path, d);
    finish_aggregations(fs, set, path, d);
    finish_dedup(fs, set, path, d);
    finish_expectations(fs, set, path, d);
}

}  // namespace

const std::vector<std::pair<std::string, expectation_kind>>& expectation_kinds() {
    static const std::vector<std::pair<std::string, expectation_kind>> kinds = [] {
        std::vector<std::pair<std::string, expectation_kind>> k;
        for (auto each : {expectation_kind::null_rate, expectation_kind::range, expectation_kind::allowed,
                          expectation_kind::mean, expectation_kind::distinct, expectation_kind::records,
                          expectation_kind::freshness, expectation_kind::drift})
            k.emplace_back(to_string(each), each);
        return k;
    }();
    return kinds;
}

const std::vector<op_name>& transform_ops() {
    static const std::vector<op_name> ops = {
        {"rename", transform_op::rename, {"from", "to"}},
        {"cast", transform_op::cast, {"field", "to"}},
        {"default", transform_op::set_default, {"field", "value"}},
        {"clamp", transform_op::clamp, {"field", "min", "max"}},
        {"lower", transform_op::lower, {"field"}},
        {"upper", transform_op::upper, {"field"}},
        {"trim", transform_op::trim, {"field"}},
        {"hash", transform_op::hash, {"field", "salt"}},
        {"drop", transform_op::drop, {"field"}},
        {"filter", transform_op::filter, {"field", "equals", "not_equals", "in", "not_in", "gt", "gte", "lt", "lte"}},
    };
    return ops;
}

const std::vector<std::pair<std::string, field_type>>& type_names() {
    static const std::vector<std::pair<std::string, field_type>> types = {
        {"int", field_type::int64},     {"double", field_type::float64},      {"bool", field_type::boolean},
        {"string", field_type::string}, {"timestamp", field_type::timestamp}, {"json", field_type::json}};
    return types;
}

void apply_fields(feature_set_config& fs, const json& v, const std::string& path, diagnostics& d) {
    fs.fields.clear();
    const auto& reserved = reserved_columns();
    for (auto it = v.begin(); it != v.end(); ++it) {
        const std::string& name = it.key();
        const std::string p = child_path(path, name);
        bool name_ok = true;
        if (!is_identifier(name, max_name_len)) {
            d.add(p, "field name " + identifier_rule(max_name_len));
            name_ok = false;
        } else if (std::find(reserved.begin(), reserved.end(), name) != reserved.end()) {
            d.add(p, "\"" + name + "\" is a reserved column name (" + join(reserved, ", ") + "); rename the field");
            name_ok = false;
        }
        field_draft f;
        f.cfg.name = name;
        read_object(it.value(), p, field_keys(), f, d);  // still checked, so every error shows at once
        finish_field(f, p, d);
        // A field with a bad name or type is left out, so that nothing later judges it again
        // (an aggregation or transform naming it is not a second error: see declared_in_file).
        if (name_ok && f.type_ok) fs.fields.push_back(std::move(f.cfg));
    }
}

void apply_aggregations(feature_set_config& fs, const json& v, const std::string& path, diagnostics& d) {
    fs.aggregations.clear();
    if (v.size() > max_aggregations) {
        d.add(path, "at most " + std::to_string(max_aggregations) + " aggregations per feature set, got " +
                        std::to_string(v.size()));
        return;
    }
    // One entry per element, even a bad one, so that entry i is always aggregations[i] in the file.
    for (std::size_t i = 0; i < v.size(); ++i) {
        aggregation_config a;
        read_object(v[i], index_path(path, i), aggregation_keys(), a, d);
        fs.aggregations.push_back(std::move(a));
    }
}

void apply_feature_sets(config& c, const json& v, const std::string& path, diagnostics& d) {
    c.feature_sets.clear();
    if (v.empty()) {
        d.add(path, "must list at least one feature set");
        return;
    }
    for (std::size_t i = 0; i < v.size(); ++i) {
        feature_set_config fs;
        read_object(v[i], index_path(path, i), feature_set_keys(), fs, d);
        if (v[i].is_object()) finish_set(fs, v[i], index_path(path, i), d);
        c.feature_sets.push_back(std::move(fs));
    }
    // Names are the API's and the tables' names; topics route events to exactly one set.
    for (std::size_t i = 0; i < c.feature_sets.size(); ++i) {
        const auto& a = c.feature_sets[i];
        for (std::size_t j = 0; j < i; ++j) {
            const auto& b = c.feature_sets[j];
            // Two versions of one set may run side by side (the newer one backfilling), from one topic.
            if (!a.name.empty() && a.name == b.name && a.version == b.version)
                d.add(index_path(path, i) + ".name",
                      "duplicate feature set name " + quote(a.name) + " (also " + index_path(path, j) + ")" +
                          (a.version == 1 ? "" : " at version " + std::to_string(a.version)));
            if (!a.topic.empty() && a.topic == b.topic && a.name != b.name)
                d.add(index_path(path, i) + ".topic", "topic " + quote(a.topic) + " already feeds feature set " +
                                                          quote(b.name) + " (" + index_path(path, j) + ")");
        }
    }
}

}  // namespace sluice::config_detail
