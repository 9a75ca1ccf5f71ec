from medledger.vocabulary import Role


def test_dev_consortium_is_deployed_with_founders(chain):
    c = chain.read.consortium
    assert c.threshold() == 2
    assert set(c.members()) == {
        chain.hospital_a.address,
        chain.hospital_b.address,
        chain.cdc.address,
        chain.auditor.address,
    }
    assert c.has_any_role(chain.hospital_a.address, Role.RELAYER)
    assert not c.has_any_role(chain.auditor.address, Role.custodian())
