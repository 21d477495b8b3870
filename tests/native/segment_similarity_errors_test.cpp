// Every class of invalid tk_segment_similarity argument (SPEC section 5, "Segment similarity"): the
// status, a message naming the argument, and no byte written to any tensor.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tkt {
namespace {

// x [5, 4, 6] f32, segment_lengths {2, 3}: out [2, 4] f32.
struct SegmentCall {
    HostArray x_array{TK_DTYPE_F32, {5, 4, 6}};
    HostArray lengths_array{TK_DTYPE_I32, {2}};
    HostArray out_array{TK_DTYPE_F32, {2, 4}};
    tk_tensor x{}, lengths{}, out{};
    bool null_x = false, null_lengths = false, null_out = false;

    SegmentCall() {
        fill_values(x_array);
        lengths_array.set(0, 0, 0, 2);
        lengths_array.set(1, 0, 0, 3);
        out_array.fill_bytes(0xA5);
        x = x_array.desc();
        lengths = lengths_array.desc();
        out = out_array.desc();
    }
    std::vector<const HostArray*> arrays() const { return {&x_array, &lengths_array, &out_array}; }
    tk_status run() const {
        return tk_segment_similarity(null_x ? nullptr : &x, null_lengths ? nullptr : &lengths, null_out ? nullptr : &out, nullptr);
    }
};

using SegmentInvalidCase = InvalidCase<SegmentCall>;

std::vector<SegmentInvalidCase> segment_cases() {
    return {
        {"NullX", [](SegmentCall& c) { c.null_x = true; }, "x"},
        {"NullLengths", [](SegmentCall& c) { c.null_lengths = true; }, "segment_lengths"},
        {"NullOut", [](SegmentCall& c) { c.null_out = true; }, "out"},
        {"XRank4", [](SegmentCall& c) { c.x.rank = 4; c.x.shape[3] = 1; c.x.strides[3] = 1; }, "x"},
        {"XIntegerDtype", [](SegmentCall& c) { c.x.dtype = TK_DTYPE_I32; }, "x"},
        {"XChannelsStrided", [](SegmentCall& c) { c.x.strides[2] = 2; c.x.shape[2] = 3; }, "x"},
        {"XMisaligned", [](SegmentCall& c) { c.x.data = static_cast<char*>(c.x.data) + 1; }, "x"},
        {"LengthsRank2", [](SegmentCall& c) { c.lengths.rank = 2; c.lengths.shape[1] = 1; c.lengths.strides[1] = 1; }, "segment_lengths"},
        {"LengthsI64", [](SegmentCall& c) { c.lengths.dtype = TK_DTYPE_I64; c.lengths.shape[0] = 1; }, "segment_lengths.dtype"},
        {"LengthsZero", [](SegmentCall& c) { c.lengths_array.set(0, 0, 0, 0); c.lengths_array.set(1, 0, 0, 5); }, "segment_lengths[0]"},
        {"LengthsNegative", [](SegmentCall& c) { c.lengths_array.set(1, 0, 0, -3); }, "segment_lengths[1]"},
        {"LengthsShortOfT", [](SegmentCall& c) { c.lengths_array.set(1, 0, 0, 2); }, "segment_lengths"},
        {"LengthsPastT", [](SegmentCall& c) { c.lengths_array.set(1, 0, 0, 4); }, "segment_lengths"},
        {"OutWrongSegments", [](SegmentCall& c) { c.out.shape[0] = 1; }, "out.shape[0]"},
        {"OutWrongPositions", [](SegmentCall& c) { c.out.shape[1] = 3; }, "out.shape[1]"},
        {"OutF16", [](SegmentCall& c) { c.out.dtype = TK_DTYPE_F16; }, "out.dtype"},
        {"OutOverX", [](SegmentCall& c) { c.out.data = c.x.data; }, "out"},
        {"OutOverLengths",
         [](SegmentCall& c) {
             c.lengths_array.set(0, 0, 0, 5);
             c.lengths.shape[0] = 1;
             c.out.shape[0] = 1;
             c.out.shape[1] = 1;
             c.x.shape[1] = 1;
             c.out.data = c.lengths.data;
         },
         "segment_lengths"},
        {"OutSelfOverlapping", [](SegmentCall& c) { c.out.strides[0] = 1; }, "out"},
    };
}

class SegmentSimilarityInvalid : public ::testing::TestWithParam<SegmentInvalidCase> {};
TEST_P(SegmentSimilarityInvalid, IsRejectedWithoutWriting) { check_invalid(GetParam()); }
INSTANTIATE_TEST_SUITE_P(Segment, SegmentSimilarityInvalid, ::testing::ValuesIn(segment_cases()), case_name<SegmentCall>);

}  // namespace
}  // namespace tkt
