#include "sluice/core/record.hpp"

namespace sluice {

const char* to_string(dead_letter_reason r) {
    switch (r) {
        case dead_letter_reason::invalid: return "invalid";
        case dead_letter_reason::too_large: return "too_large";
        case dead_letter_reason::tombstone: return "tombstone";
        case dead_letter_reason::late_event: return "late_event";
    }
    return "invalid";
}

}  // namespace sluice
