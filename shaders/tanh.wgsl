
// tanh in f32 (compiler/src/lower/emit/expr.rs declares it once per kernel that calls
// it). Drivers may compute tanh from exponentials, (e^2x − 1) / (e^2x + 1), which
// loses the digits of small arguments to cancellation: lavapipe's tanh(1e-8) is 0,
// tanh(1e-7) is 1.19e-7 and tanh(1e-3) is 2e-5 too large. Below 0.55 the Taylor
// series to x^17 is exact to f32 (the next term is under 1e-8 of the sum); above, the
// cancellation costs at most a bit. Clamping keeps the exponentials finite: tanh(±9)
// is ±1 in f32.
fn wg_tanh(x: f32) -> f32 {
    let c: f32 = clamp(x, -9.0, 9.0);
    let s: f32 = c * c;
    var p: f32 = 0.00059002744;
    p = p * s - 0.0014558344;
    p = p * s + 0.0035921280;
    p = p * s - 0.0088632355;
    p = p * s + 0.021869489;
    p = p * s - 0.053968254;
    p = p * s + 0.13333333;
    p = p * s - 0.33333333;
    let series: f32 = c + c * s * p;
    return select(tanh(c), series, abs(c) < 0.55);
}
