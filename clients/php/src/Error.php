<?php

declare(strict_types=1);

namespace Mikolicd;

use RuntimeException;

/**
 * Every failure of a call to the agent.
 *
 * getCode() answers the API's snake_case code (`server_refused`, `no_license`, ...), or `unreachable`
 * when the agent could not be asked at all; getMessage() the text for the admin; `serverCode` the
 * licensing server's own number (2008, 2041, ...) when it refused; `status` the HTTP status, 0 when
 * nothing was answered.
 */
final class Error extends RuntimeException
{
    public const UNREACHABLE = 'unreachable';
    public const BAD_ANSWER = 'bad_answer';

    public function __construct(
        string $code,
        string $message,
        public readonly ?int $serverCode = null,
        public readonly int $status = 0,
    ) {
        parent::__construct($message);
        $this->code = $code;
    }

    /** The same failure, its message led by what the caller was doing ("Failed to activate coupon: "). */
    public function after(string $doing): self
    {
        return new self($this->getCode(), $doing . $this->getMessage(), $this->serverCode, $this->status);
    }
}
