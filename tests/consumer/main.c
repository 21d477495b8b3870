/* Links the installed library through find_package(TokenKernels) and pools a 1x1x4x4x3 tensor. */
#include <stdio.h>
#include <tokenkernels/tokenkernels.h>

int main(void) {
    float in[4 * 4 * 3];
    float out[2 * 2 * 3];
    for (int i = 0; i < 48; ++i) in[i] = (float)i;
    tk_tensor x = {in, TK_DTYPE_F32, TK_DEVICE_CPU, 0, 5, {1, 1, 4, 4, 3}, {48, 48, 12, 3, 1}};
    tk_tensor y = {out, TK_DTYPE_F32, TK_DEVICE_CPU, 0, 5, {1, 1, 2, 2, 3}, {12, 12, 6, 3, 1}};
    tk_pool_params params = {TK_POOL_WINDOW_AVG, {1, 2, 2}, {1, 2, 2}, {0, 0, 0}};
    if (tk_version() != TK_VERSION) {
        fprintf(stderr, "header version %d, library version %d\n", TK_VERSION, tk_version());
        return 1;
    }
    if (tk_pool(&params, &x, &y, NULL, 0, NULL) != TK_STATUS_OK) {
        fprintf(stderr, "tk_pool failed: %s\n", tk_last_error());
        return 1;
    }
    /* Window (h, w) in {0,1}^2 at channel 0: (0 + 3 + 12 + 15) / 4 = 7.5 */
    if (out[0] != 7.5f) {
        fprintf(stderr, "expected 7.5, got %f\n", out[0]);
        return 1;
    }
    printf("TokenKernels %s found by find_package; pooled 4x4 -> 2x2\n", tk_version_string());
    return 0;
}
