<?php

declare(strict_types=1);

// app/Http/Middleware/EnsureLicensed.php — alias it in bootstrap/app.php:
//     $middleware->alias(['licensed' => \App\Http\Middleware\EnsureLicensed::class]);
// and wrap the product's routes: Route::middleware('licensed')->group(...).
//
// Like seed 001's CheckLicenseMiddleware it makes no network call: it only
// checks that the installer stored tokens. The licence itself is enforced
// where it matters, by the gate in front of the author's APIs; a buyer's
// product keeps running when the licence server is unreachable.

namespace App\Http\Middleware;

use Closure;
use Illuminate\Http\Request;
use LicenseGate\TokenStore;
use Symfony\Component\HttpFoundation\Response;

final class EnsureLicensed
{
    public function __construct(private readonly TokenStore $tokens)
    {
    }

    public function handle(Request $request, Closure $next): Response
    {
        if ($request->is('install*')) {
            return $next($request);
        }
        $tokens = $this->tokens->load();
        if ($tokens === null) {
            // Never activated, or the gateway revoked the tokens (a clone was
            // detected, or the installation was deactivated): activate again.
            return redirect('/install/license');
        }
        // The licence block from the last activation, refresh or status() call,
        // for banners (support expired, product retired) without an API call.
        $request->attributes->set('licence', $tokens->license);
        return $next($request);
    }
}

/*
 * Handling the gate's refusals of a first-party call (e.g. in a controller):
 *
 *     try {
 *         $result = app(\LicenseGate\Client::class)->request('POST', 'https://api.example.com/convert', ['json' => $input])->json();
 *     } catch (\LicenseGate\Unavailable $e) {
 *         return back()->with('warning', 'The conversion service is busy; try again in ' . $e->retryAfter() . ' seconds.');
 *     } catch (\LicenseGate\LicenseSuspended | \LicenseGate\LicenseRevoked | \LicenseGate\TokenRevoked $e) {
 *         return back()->with('error', $e->getDetail());
 *     }
 */
