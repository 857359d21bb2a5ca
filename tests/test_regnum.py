"""Registration numbers and coupons as admins type them: normalised, checked, and masked in any text."""
import pytest

from mikolicd import regnum


@pytest.mark.parametrize("typed", [" miko-abcde-fghij-klmno-pqrst ", "MIKO-ABCDE-FGHIJ-KLMNO-PQRST"])
def test_a_number_is_trimmed_and_upper_cased(typed):
    assert regnum.registration_number(typed) == "MIKO-ABCDE-FGHIJ-KLMNO-PQRST"


@pytest.mark.parametrize("typed", ["MIKO-123", "MIKO-ABCDE-FGHIJ-KLMNO", "MIKOUPD-ABCDE-FGHIJ-KLMNO-PQRST", 42, None])
def test_anything_else_is_refused_with_the_format_spelled_out(typed):
    with pytest.raises(regnum.FormatError, match="MIKO-XXXXX-XXXXX-XXXXX-XXXXX"):
        regnum.registration_number(typed)


def test_a_coupon_is_not_a_number():
    assert regnum.coupon("mikoupd-aaaaa-bbbbb-ccccc-ddddd") == "MIKOUPD-AAAAA-BBBBB-CCCCC-DDDDD"
    with pytest.raises(regnum.FormatError, match="MIKOUPD-XXXXX"):
        regnum.coupon("MIKO-AAAAA-BBBBB-CCCCC-DDDDD")


def test_numbers_and_coupons_are_masked_inside_any_text_but_the_format_hint_is_not():
    text = "got MIKO-ABCDE-FGHIJ-KLMNO-PQRST and mikoupd-aaaaa-bbbbb-ccccc-ddddd, expected MIKO-XXXXX-XXXXX-XXXXX-XXXXX"
    assert regnum.mask(text) == ("got MIKO-ABCDE-*****-*****-***** and mikoupd-aaaaa-*****-*****-*****, expected "
                                 "MIKO-XXXXX-XXXXX-XXXXX-XXXXX")
