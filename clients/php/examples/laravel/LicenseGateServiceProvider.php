<?php

declare(strict_types=1);

// app/Providers/LicenseGateServiceProvider.php — register it in bootstrap/providers.php.
//
// One Client per application, its tokens in the product's own database
// (PdoTokenStore on Laravel's connection) so every PHP-FPM worker and
// every server behind the load balancer shares them and refreshes once.
// The purchase code is never stored: the installer passes it to
// activate() and forgets it.

namespace App\Providers;

use Illuminate\Support\Facades\DB;
use Illuminate\Support\ServiceProvider;
use LicenseGate\Client;
use LicenseGate\PdoTokenStore;
use LicenseGate\TokenStore;

final class LicenseGateServiceProvider extends ServiceProvider
{
    public function register(): void
    {
        $this->app->singleton(TokenStore::class, static function (): TokenStore {
            return new PdoTokenStore(DB::connection()->getPdo(), 'default', 'licensegate_tokens');
            // Or, without a database: new \LicenseGate\FileTokenStore(storage_path('app/licensegate/licence.json'));
        });

        $this->app->singleton(Client::class, static fn ($app): Client => new Client(
            // The author's gateway, baked into the product (config/licensegate.php), not buyer-tunable.
            config('licensegate.url', 'https://api.example.com/v1/licenses'),
            $app->make(TokenStore::class),
            ['timeout' => 10, 'product' => config('licensegate.product')],
        ));
    }

    public function boot(): void
    {
        // A migration would do this; createTable() is "IF NOT EXISTS".
        $store = $this->app->make(TokenStore::class);
        if ($this->app->runningInConsole() && $store instanceof PdoTokenStore) {
            $store->createTable();
        }
    }
}

/*
 * config/licensegate.php (the author's, committed):
 *
 *     return ['url' => 'https://api.example.com/v1/licenses', 'product' => 'converter-pro'];
 *
 * Installer step (InstallController@activate):
 *
 *     public function activate(Request $request, Client $licence)
 *     {
 *         $request->validate(['license_key' => 'required|string|max:255']);
 *         try {
 *             $licence->activate($request->input('license_key'), $request->getHost(), ['label' => 'production']);
 *         } catch (\LicenseGate\Unavailable | \LicenseGate\RateLimited $e) {
 *             return back()->withErrors(['license_key' => 'The licence server is not answering right now; nothing was changed. Try again in '
 *                 . $e->retryAfter() . ' seconds.']);
 *         } catch (\LicenseGate\ActivationLimitReached $e) {
 *             return back()->withErrors(['license_key' => $e->getDetail() . ' (' . implode(', ', $e->domains()) . ')']);
 *         } catch (\LicenseGate\LicenseGateException $e) {
 *             return back()->withErrors(['license_key' => $e->getDetail()]);
 *         }
 *         return redirect()->route('install.database');
 *     }
 *
 * A first-party API call anywhere in the product:
 *
 *     $rates = app(Client::class)->request('GET', 'https://api.example.com/convert', ['query' => ['from' => 'EUR']])->json();
 */
