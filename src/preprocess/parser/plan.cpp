// The compiled form of a feature set (plan.hpp).

#include "plan.hpp"

#include <algorithm>
#include <charconv>
#include <optional>
#include <stdexcept>
#include <string_view>

namespace sluice::parser {

namespace {

// RFC 6901: "/a/b~1c" → {"a", "b/c"}; nothing when it does not start with "/" or has a bad "~".
std::optional<tokens> parse_pointer(std::string_view p) {
    if (p.empty() || p[0] != '/') return std::nullopt;
    tokens out;
    std::string current;
    for (std::size_t i = 1; i <= p.size(); ++i) {
        if (i == p.size() || p[i] == '/') {
            out.push_back(std::move(current));
            current.clear();
        } else if (p[i] == '~') {
            if (i + 1 >= p.size() || (p[i + 1] != '0' && p[i + 1] != '1')) return std::nullopt;
            current += p[i + 1] == '0' ? '~' : '/';
            ++i;
        } else {
            current += p[i];
        }
    }
    return out;
}

// A set's key or event time: a JSON pointer when it starts with "/", else one member name.
tokens member_or_pointer(const std::string& text, const char* what) {
    if (text.empty() || text[0] != '/') return {text};
    auto t = parse_pointer(text);
    if (!t) throw std::invalid_argument(std::string("invalid JSON pointer in ") + what + ": " + text);
    return *t;
}

std::size_t field_index_of(const feature_set_config& set, const std::string& name, std::size_t t) {
    for (std::size_t i = 0; i < set.fields.size(); ++i)
        if (set.fields[i].name == name) return i;
    throw std::invalid_argument("feature set " + set.name + ": transforms[" + std::to_string(t) +
                                "] names an undeclared field '" + name + "'");
}

}  // namespace

const json* find_at(const json& doc, const tokens& path) {
    const json* at = &doc;
    for (const auto& t : path) {
        if (at->is_object()) {
            const auto it = at->find(t);
            if (it == at->end()) return nullptr;
            at = &*it;
        } else if (at->is_array()) {
            // A decimal index without leading zeros; "-" (past the end) never names a value.
            if (t.empty() || (t.size() > 1 && t[0] == '0') ||
                !std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; }))
                return nullptr;
            std::size_t index = 0;
            auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), index);
            if (ec != std::errc{} || ptr != t.data() + t.size() || index >= at->size()) return nullptr;
            at = &(*at)[index];
        } else {
            return nullptr;
        }
    }
    return at;
}

set_plan compile(const feature_set_config& set) {
    set_plan plan;
    plan.key = member_or_pointer(set.key_field, "key");
    plan.event_time = member_or_pointer(set.event_time_field, "event_time");
    plan.fields.resize(set.fields.size());
    for (std::size_t i = 0; i < set.fields.size(); ++i) {
        const auto& f = set.fields[i];
        if (f.source.empty()) {
            plan.fields[i].source = {f.name};
        } else {
            auto t = parse_pointer(f.source);
            if (!t) throw std::invalid_argument("field " + f.name + ": invalid JSON pointer " + f.source);
            plan.fields[i].source = std::move(*t);
        }
    }
    for (std::size_t t = 0; t < set.transforms.size(); ++t) {
        const auto& tr = set.transforms[t];
        if (tr.op == transform_op::rename) {
            plan.renames.emplace_back(tr.from, tr.to);
            continue;
        }
        const std::size_t fi = field_index_of(set, tr.field, t);
        auto& fp = plan.fields[fi];
        switch (tr.op) {
            case transform_op::cast:
                fp.cast = true;
                break;
            case transform_op::drop:
                fp.drop = true;
                break;
            case transform_op::filter:
                plan.filters.push_back({t, fi, tr.condition, tr.operands});
                if (std::find(plan.filter_fields.begin(), plan.filter_fields.end(), fi) == plan.filter_fields.end())
                    plan.filter_fields.push_back(fi);
                break;
            default:
                fp.steps.push_back(tr);
                break;
        }
    }

    // Renames rewrite the event before anything is read, and a deeper pointer needs the DOM.
    plan.fast = plan.renames.empty();
    const std::size_t reads = plan.fields.size() + 2;
    plan.slot.resize(reads);
    for (std::size_t n = 0; n < reads && plan.fast; ++n) {
        // The key and the event time first: they lead most events, and the scan looks for members
        // in this order.
        const std::size_t read = n < 2 ? key_read(plan) + n : n - 2;
        const tokens& path = path_of(plan, read);
        if (path.size() != 1) {
            plan.fast = false;
            break;
        }
        const auto it = std::find(plan.members.begin(), plan.members.end(), path[0]);
        plan.slot[read] = static_cast<std::size_t>(it - plan.members.begin());
        if (it == plan.members.end()) plan.members.push_back(path[0]);
    }
    if (!plan.fast) {
        plan.members.clear();
        plan.slot.clear();
    }
    return plan;
}

}  // namespace sluice::parser
