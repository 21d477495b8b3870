// cuda/runtime.hpp and the tk::cuda ops for a library built without CUDA: no devices, and every
// request for CUDA work fails with BACKEND_UNAVAILABLE saying how to get a CUDA build.
#include <string>

#include "core/error.hpp"
#include "cuda/runtime.hpp"
#include "ops/attention.hpp"
#include "ops/cluster.hpp"
#include "ops/diversity.hpp"
#include "ops/kmeans.hpp"
#include "ops/merge.hpp"
#include "ops/pool.hpp"
#include "ops/relevance.hpp"
#include "ops/segment_similarity.hpp"
#include "ops/temporal.hpp"

namespace tk::cuda {
namespace {

[[noreturn]] void unavailable(const std::string& what) {
    throw Error(TK_STATUS_BACKEND_UNAVAILABLE,
                what + ": this TokenKernels library was built without CUDA; rebuild with -DTOKENKERNELS_CUDA=ON "
                       "(needs the CUDA toolkit) to use CUDA devices");
}

}  // namespace

bool is_built() noexcept { return false; }

int32_t device_count() noexcept { return 0; }

void require_device(int32_t, const char* argument) {
    unavailable(std::string("CUDA device requested for ") + argument);
}

void require_device_pointer(const void*, int32_t, const char* argument) {
    unavailable(std::string("CUDA device memory given for ") + argument);
}

void require_runnable_device(int32_t, const char* argument) {
    unavailable(std::string("CUDA device requested for ") + argument);
}

void require_stream_of_device(void*, int32_t) { unavailable("CUDA stream given"); }

std::string device_name(int32_t) { unavailable("tk_cuda_device_name"); }

void device_capability(int32_t, int32_t*, int32_t*) { unavailable("tk_cuda_device_capability"); }

void* stream_create(int32_t) { unavailable("tk_cuda_stream_create"); }

void stream_destroy(void*) { unavailable("tk_cuda_stream_destroy"); }

void stream_synchronize(void*) { unavailable("tk_cuda_stream_synchronize"); }

void* malloc_device(int32_t, uint64_t) { unavailable("tk_cuda_malloc"); }

void free_device(int32_t, void*) { unavailable("tk_cuda_free"); }

void memcpy_async(void*, const void*, uint64_t, void*) { unavailable("tk_cuda_memcpy_async"); }

void memset_async(void*, int32_t, uint64_t, void*) { unavailable("tk_cuda_memset_async"); }

void attention_importance(const ImportancePlan&, void*) { unavailable("tk_attention_importance"); }

uint64_t qk_importance_workspace_bytes(const ImportancePlan&) { unavailable("tk_qk_importance_workspace_size"); }

void qk_importance(const ImportancePlan&, void*, void*) { unavailable("tk_qk_importance"); }

uint64_t topk_workspace_bytes(const TopkPlan&) { unavailable("tk_topk_workspace_size"); }

void topk(const TopkPlan&, void*, void*) { unavailable("tk_topk"); }

void gather(const GatherPlan&, void*) { unavailable("tk_gather"); }

uint64_t contextual_workspace_bytes(const ContextualPlan&) { unavailable("tk_visionzip_contextual_workspace_size"); }

void visionzip_contextual(const ContextualPlan&, void*, void*) { unavailable("tk_visionzip_contextual"); }

uint64_t diversity_workspace_bytes(const DiversityPlan&) { unavailable("tk_diversity_workspace_size"); }

void diversity_select(const DiversityPlan&, void*, void*) { unavailable("tk_diversity_select"); }

void pool(const PoolPlan&, void*) { unavailable("tk_pool"); }

uint64_t dpc_knn_workspace_bytes(const DpcKnnPlan&) { unavailable("tk_dpc_knn_workspace_size"); }

void dpc_knn(const DpcKnnPlan&, void*, void*) { unavailable("tk_dpc_knn"); }

void cluster_merge(const ClusterMergePlan&, void*) { unavailable("tk_cluster_merge"); }

void cluster_assign(const ClusterAssignPlan&, void*) { unavailable("tk_cluster_assign"); }

uint64_t merge_workspace_bytes(const MergePlan&) { unavailable("tk_merge_workspace_size"); }

void merge_match(const MergePlan&, void*, void*) { unavailable("tk_merge_match"); }

void merge(const MergePlan&, void*, void*) { unavailable("tk_merge"); }

void unmerge(const UnmergePlan&, void*) { unavailable("tk_unmerge"); }

void temporal_similarity(const TemporalSimilarityPlan&, void*) { unavailable("tk_temporal_similarity"); }

void segment_similarity(const SegmentSimilarityPlan&, void*) { unavailable("tk_segment_similarity"); }

void framefusion_merge(const FrameFusionPlan&, void*, void*) { unavailable("tk_framefusion_merge"); }

void select_video_tokens(const VideoSelectionPlan& plan, void*, void*) {
    unavailable(plan.method == VideoMethod::kEvs ? "tk_evs" : "tk_dycoke_ttm");
}

void query_relevance(const RelevancePlan&, int32_t, void*) { unavailable("tk_query_relevance"); }

uint64_t conditional_dpp_workspace_bytes(const DppPlan&) { unavailable("tk_conditional_dpp_workspace_size"); }

void conditional_dpp_select(const DppPlan&, int32_t, void*, void*) { unavailable("tk_conditional_dpp_select"); }

uint64_t kmeans_workspace_bytes(const KMeansPlan&) { unavailable("tk_kmeans_workspace_size"); }

void kmeans(const KMeansPlan&, void*, void*) { unavailable("tk_kmeans"); }

}  // namespace tk::cuda
