#include "sluice/core/field_type.hpp"

namespace sluice {

const char* to_string(field_type t) {
    switch (t) {
        case field_type::int64: return "int";
        case field_type::float64: return "double";
        case field_type::boolean: return "bool";
        case field_type::string: return "string";
        case field_type::timestamp: return "timestamp";
        case field_type::json: return "json";
    }
    return "unknown";
}

}  // namespace sluice
