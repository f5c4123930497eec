#include "common.hpp"

#include <charconv>
#include <cmath>

#include "sluice/core/clock.hpp"

namespace sluice {

// Declared in sluice/serve/services.hpp.
int version_switch::resolve(std::string_view name) const {
    const auto at = name.find('@');
    if (at != std::string_view::npos) {
        const std::string_view base = name.substr(0, at), number = name.substr(at + 1);
        std::int64_t version = 0;
        const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), version);
        if (ec != std::errc() || end != number.data() + number.size()) return -1;
        for (std::size_t i = 0; i < cfg_.feature_sets.size(); ++i)
            if (cfg_.feature_sets[i].name == base && cfg_.feature_sets[i].version == version) return static_cast<int>(i);
        return -1;
    }
    int pinned = -1, newest_live = -1, oldest = -1;
    for (std::size_t i = 0; i < cfg_.feature_sets.size(); ++i) {
        const auto& s = cfg_.feature_sets[i];
        if (s.name != name) continue;
        const int index = static_cast<int>(i);
        if (s.serving && pinned < 0) pinned = index;
        if (live_[i].load() && (newest_live < 0 || cfg_.feature_sets[static_cast<std::size_t>(newest_live)].version < s.version))
            newest_live = index;
        if (oldest < 0 || cfg_.feature_sets[static_cast<std::size_t>(oldest)].version > s.version) oldest = index;
    }
    return pinned >= 0 ? pinned : newest_live >= 0 ? newest_live : oldest;
}

}  // namespace sluice

namespace sluice::serve {

set_catalog::set_catalog(const config& cfg, const version_switch* versions) : versions_(versions) {
    sets_.reserve(cfg.feature_sets.size());
    for (std::uint32_t i = 0; i < cfg.feature_sets.size(); ++i) {
        set_view v;
        v.index = i;
        v.set = &cfg.feature_sets[i];
        v.columns = latest_columns(*v.set);
        for (std::size_t c = 0; c < v.columns.size(); ++c) {
            v.column_of.emplace(v.columns[c].name, c);
            v.all.push_back(c);
        }
        sets_.push_back(std::move(v));
    }
}

void off_io_thread(const serve_context& ctx, std::function<void()> work, const responder& respond) {
    if (ctx.lookups == nullptr) return work();
    if (!ctx.lookups->submit(std::move(work)))
        respond(error_response(http::status::service_unavailable, "overloaded", "the server is too busy; retry"));
}

const set_view* set_catalog::find(std::string_view name) const {
    if (versions_) {
        const int index = versions_->resolve(name);
        if (index >= 0) return &sets_[static_cast<std::size_t>(index)];
        // Sets added by a live reload (each the only version of its name) come after the switch's.
        for (std::size_t i = versions_->size(); i < sets_.size(); ++i)
            if (sets_[i].set->name == name || sets_[i].set->versioned_name() == name) return &sets_[i];
        return nullptr;
    }
    for (const auto& v : sets_)
        if (v.set->name == name) return &v;
    return nullptr;
}

ordered_json render_value(field_type type, const value& v) {
    return std::visit(
        [type](const auto& x) -> ordered_json {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::monostate>) {
                return nullptr;
            } else if constexpr (std::is_same_v<T, std::int64_t>) {
                if (type == field_type::timestamp) return format_rfc3339_ms(x);
                return x;
            } else if constexpr (std::is_same_v<T, double>) {
                if (!std::isfinite(x)) return nullptr;
                return x;
            } else if constexpr (std::is_same_v<T, bool>) {
                return x;
            } else {
                if (type == field_type::json) {
                    ordered_json parsed = ordered_json::parse(x, nullptr, /*allow_exceptions=*/false);
                    if (!parsed.is_discarded()) return parsed;
                }
                return x;
            }
        },
        v);
}

ordered_json render_values(const set_view& view, const std::vector<std::size_t>& columns, const latest_entry& e) {
    ordered_json values = ordered_json::object();
    for (std::size_t i : columns) {
        const latest_column& c = view.columns[i];
        // A field added to the schema after the entry was written has no value yet.
        values[c.name] = i < e.values.size() ? render_value(c.type, e.values[i]) : ordered_json(nullptr);
    }
    return values;
}

void append_value_json(std::string& out, field_type type, const value& v) {
    // A json field's stored text is parsed and rendered as render_value does (compact; text that
    // is not JSON becomes a string); every other value is written as Redis holds it.
    if (type == field_type::json && std::holds_alternative<std::string>(v))
        out += dump_json(render_value(type, v));
    else
        append_value_json_text(out, type, v);
}

void append_values_json(std::string& out, const set_view& view, const std::vector<std::size_t>& columns,
                        const latest_entry& e) {
    out += '{';
    bool first = true;
    for (std::size_t i : columns) {
        const latest_column& c = view.columns[i];
        if (!first) out += ',';
        first = false;
        append_json_string(out, c.name);
        out += ':';
        if (i < e.values.size())
            append_value_json(out, c.type, e.values[i]);
        else
            out += "null";
    }
    out += '}';
}

response json_text_response(http::status status, std::string body) {
    response res{status, 11};
    res.set(http::field::content_type, "application/json");
    res.body() = std::move(body);
    return res;
}

const char* age_status(const set_view& view, const latest_entry& e, std::int64_t at_ms,
                       std::optional<std::int64_t> max_staleness_ms) {
    const std::int64_t age = at_ms - e.event_time_ms;
    if (view.set->ttl_ms > 0 && age > view.set->ttl_ms) return "EXPIRED";
    if (max_staleness_ms && age > *max_staleness_ms) return "STALE";
    return "PRESENT";
}

std::optional<std::int64_t> parse_non_negative(std::string_view text) {
    std::int64_t out = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || out < 0) return std::nullopt;
    return out;
}

std::optional<std::int64_t> parse_time(std::string_view text) {
    if (auto t = parse_rfc3339(std::string(text))) return t;
    return parse_non_negative(text);
}

std::optional<std::int64_t> parse_json_time(const nlohmann::json& j) {
    if (j.is_string()) return parse_time(std::string_view(j.get_ref<const std::string&>()));
    if (j.is_number_integer()) {
        const auto v = j.get<std::int64_t>();
        if (v >= 0) return v;
    }
    return std::nullopt;
}

result<std::vector<std::size_t>> select_columns(const set_view& view, const std::vector<std::string>& names) {
    using R = result<std::vector<std::size_t>>;
    std::vector<bool> wanted(view.columns.size(), false);
    for (const auto& name : names) {
        if (name.empty()) continue;
        auto it = view.column_of.find(name);
        if (it == view.column_of.end())
            return R::failure("feature set '" + view.set->name + "' has no field '" + name + "'");
        wanted[it->second] = true;
    }
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < wanted.size(); ++i)
        if (wanted[i]) out.push_back(i);
    return out;
}

response unknown_set(std::string_view name) {
    return error_response(http::status::not_found, "feature_set_not_found",
                          "feature set '" + std::string(name) + "' is not configured");
}

response bad_request(std::string_view message) {
    return error_response(http::status::bad_request, "bad_request", message);
}

std::optional<response> check_content_type(const request& req, std::initializer_list<std::string_view> accepted) {
    auto it = req.find(http::field::content_type);
    if (it == req.end()) return std::nullopt;
    std::string_view type = it->value();
    if (auto semi = type.find(';'); semi != std::string_view::npos) type = type.substr(0, semi);
    type = trim_ows(type);
    using boost::beast::iequals;
    for (auto a : accepted) {
        if (iequals(type, a)) return std::nullopt;
        // `curl -d '{...}'` labels JSON as a form; Feast's documented examples send it so.
        if (a == "application/json" && iequals(type, "application/x-www-form-urlencoded")) return std::nullopt;
    }
    std::string list;
    for (auto a : accepted) list += (list.empty() ? "" : ", ") + std::string(a);
    return error_response(http::status::unsupported_media_type, "unsupported_media_type",
                          "Content-Type " + std::string(type) + " is not accepted here; send " + list);
}

}  // namespace sluice::serve
