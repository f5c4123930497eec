#include "sluice/core/value_codec.hpp"

#include <nlohmann/json.hpp>

#include "sluice/core/clock.hpp"

namespace sluice {

using json = nlohmann::json;

std::string value_to_json_text(field_type type, const value& v) {
    return std::visit(
        [type](const auto& x) -> std::string {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::monostate>) {
                return "null";
            } else if constexpr (std::is_same_v<T, std::int64_t>) {
                if (type == field_type::timestamp) return '"' + format_rfc3339_ms(x) + '"';
                return std::to_string(x);
            } else if constexpr (std::is_same_v<T, double>) {
                return json(x).dump();
            } else if constexpr (std::is_same_v<T, bool>) {
                return x ? "true" : "false";
            } else {
                if (type == field_type::json) return x;
                return json(x).dump(-1, ' ', false, json::error_handler_t::replace);
            }
        },
        v);
}

std::optional<value> value_from_json_text(field_type type, std::string_view text) {
    json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return std::nullopt;
    if (j.is_null()) return value{};
    const bool fits_int64 = j.is_number_integer() && !(j.is_number_unsigned() && j.get<std::uint64_t>() > INT64_MAX);
    switch (type) {
        case field_type::int64:
            if (fits_int64) return value{j.get<std::int64_t>()};
            return std::nullopt;
        case field_type::float64:
            if (j.is_number()) return value{j.get<double>()};
            return std::nullopt;
        case field_type::boolean:
            if (j.is_boolean()) return value{j.get<bool>()};
            return std::nullopt;
        case field_type::string:
            if (j.is_string()) return value{j.get<std::string>()};
            return std::nullopt;
        case field_type::timestamp:
            if (j.is_string()) {
                if (auto t = parse_rfc3339(j.get_ref<const std::string&>())) return value{*t};
            } else if (fits_int64) {
                return value{j.get<std::int64_t>()};
            }
            return std::nullopt;
        case field_type::json:
            return value{j.dump()};
    }
    return std::nullopt;
}

}  // namespace sluice
